"""The console's configuration: one TOML file (optional), environment overrides, validated once.

Any value can be overridden by an environment variable `MRV_CONSOLE__<NAME>` (`MRV_CONSOLE__PORT=8080`).
The database is a libpq conninfo (empty: the `PG*` variables decide); keep its password in PGPASSWORD or a
passfile. Relative paths are relative to the configuration file. See console.example.toml.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mrv_common.settings import ConfigPath, SettingsError, load_settings
from mrv_engine.errors import MrvError

ENV_PREFIX = "MRV_CONSOLE__"


class ConsoleConfigError(MrvError):
    """The configuration file or environment is unusable (one line, for the operator)."""


class ConsoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    conninfo: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, le=65535)
    projects_dir: ConfigPath = Path("projects")  # <project_id>.toml, as `mrv report --config` takes
    reports_dir: ConfigPath = Path("var/console/reports")  # generated reports, cached by data version
    log_vkey: str | None = None  # the log's verifier key (`mrv anchor keygen`): checkpoints and bundles
    session_ttl_s: int = Field(default=8 * 3600, ge=60, le=30 * 24 * 3600)
    secure_cookies: bool = False  # set Secure on the session cookie (serve over https)
    # Failed-login throttle (throttle.py): after this many failures in the window, a user name or a client
    # address is refused without a password check until the oldest failure leaves the window.
    login_failures_per_user: int = Field(default=5, ge=1, le=1000)
    login_failures_per_address: int = Field(default=20, ge=1, le=100_000)
    login_failure_window_s: int = Field(default=15 * 60, ge=1, le=24 * 3600)
    # With a broker directory, enrolling or revoking through the console rewrites its passwd and acl files
    # (as `mrv devices` does); SIGHUP the broker to reload them.
    broker_dir: ConfigPath | None = None
    online_within_s: int = Field(default=900, ge=1)  # a device is online if seen this recently
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=8, ge=1)


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None,
                **overrides: Any) -> ConsoleConfig:
    """Read `path` (None: defaults only), apply MRV_CONSOLE__ variables, then `overrides`; validate."""
    settings_env = dict(os.environ if environ is None else environ)
    settings_env.update({f"{ENV_PREFIX}{name.upper()}": str(value)
                         for name, value in overrides.items() if value is not None})
    try:
        return load_settings(ConsoleConfig, path, settings_env, ENV_PREFIX)
    except SettingsError as e:
        raise ConsoleConfigError(str(e)) from None
