"""Ingestion: MQTT subscriber, verification, device registry, writer, database schema and migrations.

The decisions are pure (`ingest.decide`); PostgreSQL (`ingest.store`, `ingest.registry`,
`ingest.migrate`) and MQTT (`ingest.worker`) are thin shells around them.
"""

from ingest.config import IngestConfig, load_config
from ingest.decide import (
    Accept,
    Admitted,
    ChainEvent,
    ChainEventKind,
    ChainHead,
    ChainTracker,
    Decision,
    Duplicate,
    EnvelopeFlag,
    KeyInfo,
    KeyStatus,
    Message,
    Policy,
    Quarantine,
    RegistryView,
    StoredLink,
    links_needed,
    screen,
)
from ingest.errors import (
    ConfigError,
    DatabaseUnavailable,
    EnrollmentRefused,
    IngestError,
    MigrationError,
    RegistryError,
    UnknownDevice,
)
from ingest.migrate import SchemaStatus, StorageMode, migrate, schema_status, storage_mode
from ingest.pipeline import Ingestor
from ingest.registry import (
    DeviceRecord,
    KeyRecord,
    MeterRole,
    PlantKind,
    enroll_device,
    list_devices,
    load_registry_view,
    revoke_keys,
    rotate_key,
    set_ingest_account,
)
from ingest.screening import Screener
from ingest.store import BatchResult, Store
from ingest.worker import IngestWorker

__all__ = [
    "Accept", "Admitted", "BatchResult", "ChainEvent", "ChainEventKind", "ChainHead", "ChainTracker",
    "ConfigError", "DatabaseUnavailable", "Decision", "DeviceRecord", "Duplicate", "EnrollmentRefused",
    "EnvelopeFlag", "IngestConfig", "IngestError", "IngestWorker", "Ingestor", "KeyInfo", "KeyRecord",
    "KeyStatus", "Message", "MeterRole", "MigrationError", "PlantKind", "Policy", "Quarantine",
    "RegistryError", "RegistryView", "SchemaStatus", "Screener", "StorageMode", "Store", "StoredLink",
    "UnknownDevice",
    "enroll_device", "links_needed", "list_devices", "load_config", "load_registry_view", "migrate",
    "revoke_keys", "rotate_key", "schema_status", "screen", "set_ingest_account", "storage_mode",
]
