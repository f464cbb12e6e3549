"""The agent's configuration: one TOML file, environment overrides, validated once at start.

Any value can be overridden by an environment variable named after its path, with `__` between the
parts: `MRV_EDGE__MQTT__HOST=broker.lan`, `MRV_EDGE__OUTBOX__MAX_BYTES=2000000000`, and list items by
index, `MRV_EDGE__DEVICES__0__PASSWORD_FILE=/run/secrets/inv-1`. Relative paths are relative to the
configuration file. Secrets are never values here, only paths of files holding them.
See deploy/edge.example.toml.
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
    field_validator,
    model_validator,
)

from edge_agent.delivery import DEFAULT_RECEIPT_GRACE_S
from edge_agent.errors import ConfigError
from edge_agent.outbox import DEFAULT_MAX_BYTES, OverflowPolicy
from edge_agent.sources import SourceConfig
from mrv_common.settings import ConfigPath, SettingsError, load_settings
from protocol.ids import check_id

ENV_PREFIX = "MRV_EDGE__"
OUTBOX_FILE = "outbox.sqlite"


Id = Annotated[str, AfterValidator(lambda v: check_id(v, "id"))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(_Model):
    """The broker every device of this gateway connects to (one connection per device)."""

    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = "5"  # 5 reports ACL refusals in the PUBACK; 3.1.1 hides them
    keepalive_s: int = Field(default=60, ge=5, le=65535)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)  # MQTT 5 persistent session lifetime
    tls: bool = False
    ca_file: ConfigPath | None = None  # None with tls: the system's CA store
    cert_file: ConfigPath | None = None  # client certificate, when the broker wants one
    key_file: ConfigPath | None = None
    # Un-acknowledged envelopes in flight for the whole gateway, shared evenly by its devices
    # (at least MIN_WINDOW each): bounds memory on a small gateway however many devices it reads.
    max_inflight: int = Field(default=1000, ge=1)
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    # An envelope the broker acknowledged this long ago (wall-clock seconds) and ingest has not
    # receipted, while it receipted a later seq of the device, was lost after the PUBACK: resend it.
    receipt_grace_s: float = Field(default=DEFAULT_RECEIPT_GRACE_S, ge=0)

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError("TLS files are set but tls = false")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self


class OutboxConfig(_Model):
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024 * 1024)
    policy: OverflowPolicy = OverflowPolicy.DROP_OLDEST


class DeviceConfig(_Model):
    device_id: Id
    project_id: Id
    key_file: ConfigPath
    password_file: ConfigPath | None = None  # broker password; None for a broker without passwords
    source: SourceConfig  # a table with a `type`: see edge_agent.sources.config


class AgentSettings(_Model):
    """Everything but the device list: what `EdgeAgent` itself needs."""

    data_dir: ConfigPath
    interval_s: float = Field(default=10.0, gt=0)
    clock_speed: float = Field(default=1.0, gt=0)  # > 1: simulated time (tests, fleets); never in production
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / OUTBOX_FILE


class EdgeConfig(AgentSettings):
    devices: list[DeviceConfig] = Field(min_length=1)

    @field_validator("devices")
    @classmethod
    def _unique(cls, devices: list[DeviceConfig]) -> list[DeviceConfig]:
        seen: set[str] = set()
        for device in devices:
            if device.device_id in seen:
                raise ValueError(f"device {device.device_id} is listed twice")
            seen.add(device.device_id)
        return devices


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> EdgeConfig:
    """Read, override from the environment and validate; raises ConfigError in one line."""
    try:
        return load_settings(EdgeConfig, path, os.environ if environ is None else environ, ENV_PREFIX)
    except SettingsError as e:
        raise ConfigError(str(e)) from None
