"""The ingest worker's configuration: one TOML file (optional), environment overrides, validated once.

Any value can be overridden by an environment variable named after its path with `__` between the
parts: `MRV_INGEST__BROKER__HOST=broker.lan`, `MRV_INGEST__BATCH__MAX_MESSAGES=1000`. The database is
a libpq conninfo (empty: the `PG*` variables decide); the broker password is read from a file.
Relative paths are relative to the configuration file. See ingest/ingest.example.toml.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from ingest.decide import Policy
from ingest.errors import ConfigError
from mrv_common.settings import ConfigPath, SettingsError, load_settings
from protocol.ids import check_id

ENV_PREFIX = "MRV_INGEST__"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(_Model):
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = "ingest"
    password_file: ConfigPath | None = None
    # Fixed per worker: the broker keeps this client's persistent session (and its un-acked messages).
    client_id: Annotated[str, AfterValidator(lambda v: check_id(v, "client id"))] = "ingest-1"
    keepalive_s: int = Field(default=30, ge=5, le=65535)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=60)
    # Messages the broker may have in flight to this worker un-acknowledged (MQTT 5 Receive Maximum):
    # bounds memory while the database is down; must hold at least one full batch.
    receive_maximum: int = Field(default=5000, ge=1, le=65535)
    tls: bool = False
    ca_file: ConfigPath | None = None
    reconnect_min_s: int = Field(default=1, ge=1)
    reconnect_max_s: int = Field(default=5, ge=1)

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        try:
            return self.password_file.read_text().strip()
        except OSError as e:
            raise ConfigError(f"cannot read the broker password file {self.password_file}: "
                              f"{e.strerror}") from None


class DatabaseConfig(_Model):
    conninfo: str = ""  # libpq conninfo or URI; keep passwords in PGPASSWORD, a passfile or ~/.pgpass


class BatchConfig(_Model):
    max_messages: int = Field(default=500, ge=1)
    max_delay_ms: int = Field(default=50, ge=1)
    retry_min_s: float = Field(default=0.1, gt=0)  # backoff while the database is unreachable ...
    retry_max_s: float = Field(default=2.0, gt=0)  # ... capped so ingest resumes within seconds (R3)


class VerifyConfig(_Model):
    processes: int | None = Field(default=None, ge=0)  # None: one per core; 0: verify inline
    inline_below: int = Field(default=64, ge=0)  # batches smaller than this are verified inline


class ChecksConfig(_Model):
    future_tolerance_s: float = Field(default=300.0, ge=0)
    clock_skew_s: float = Field(default=120.0, ge=0)

    def policy(self) -> Policy:
        return Policy(int(self.future_tolerance_s * 1000), int(self.clock_skew_s * 1000))


class HttpConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)  # 0: no health/metrics endpoint


class PartitionsConfig(_Model):
    months_back: int = Field(default=1, ge=0)
    months_ahead: int = Field(default=3, ge=0)


class RollupsConfig(_Model):
    # The worker packs the ended days touched since the last refresh this often (0: it does not; then a
    # timer, `mrv db refresh-rollups --every S`, or each report does).
    interval_s: float = Field(default=900.0, ge=0)


class IngestConfig(_Model):
    broker: BrokerConfig = BrokerConfig()
    database: DatabaseConfig = DatabaseConfig()
    batch: BatchConfig = BatchConfig()
    verify: VerifyConfig = VerifyConfig()
    checks: ChecksConfig = ChecksConfig()
    http: HttpConfig = HttpConfig()
    partitions: PartitionsConfig = PartitionsConfig()
    rollups: RollupsConfig = RollupsConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _check(self) -> IngestConfig:
        if self.broker.receive_maximum < self.batch.max_messages:
            raise ValueError("broker.receive_maximum must be at least batch.max_messages")
        if self.batch.retry_min_s > self.batch.retry_max_s:
            raise ValueError("batch.retry_min_s must not exceed batch.retry_max_s")
        return self


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> IngestConfig:
    """Read `path` (None: defaults only), apply MRV_INGEST__ overrides, validate; ConfigError in one line."""
    try:
        return load_settings(IngestConfig, path, os.environ if environ is None else environ, ENV_PREFIX)
    except SettingsError as e:
        raise ConfigError(str(e)) from None
