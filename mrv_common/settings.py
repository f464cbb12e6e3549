"""A service's settings: one TOML file (optional), environment overrides by path, validated once.

Any value can be overridden by an environment variable named after its path, with `__` between the
parts, after the service's prefix: `MRV_INGEST__BROKER__HOST=broker.lan`; list items by index,
`MRV_EDGE__DEVICES__0__PASSWORD_FILE=/run/secrets/inv-1`. Relative paths in the file are relative to
the file, so a configuration directory can be moved as a whole.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ValidationError, ValidationInfo

Settings = TypeVar("Settings", bound=BaseModel)


class SettingsError(ValueError):
    """A settings file or override that cannot be used; the message is one line naming the value."""


def _resolve(path: Path, info: ValidationInfo) -> Path:
    base = info.context.get("base_dir") if info.context else None
    return Path(base, path) if base is not None and not path.is_absolute() else path


# A path in a settings file: relative to the file's directory.
ConfigPath = Annotated[Path, AfterValidator(_resolve)]


def load_settings(model: type[Settings], path: Path | None, environ: Mapping[str, str], prefix: str) -> Settings:
    """Read `path` (None: defaults only), apply `prefix` overrides from `environ`, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as e:
            raise SettingsError(f"cannot read {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"{path} is not valid TOML: {e}") from None
    apply_env_overrides(data, environ, prefix)
    base_dir = Path(path).resolve().parent if path is not None else None
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as e:
        raise SettingsError(f"{path or 'configuration'}: {summarise(e)}") from None


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str], prefix: str) -> None:
    """Set data[a][b] = value for each PREFIXA__B=value (list items by index)."""
    for name, value in sorted(environ.items()):
        if not name.startswith(prefix):
            continue
        *parents, leaf = name[len(prefix):].lower().split("__")
        node: Any = data
        try:
            for key in parents:
                node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
            if isinstance(node, list):
                node[int(leaf)] = value
            elif isinstance(node, dict):
                node[leaf] = value
            else:
                raise TypeError(name)
        except (ValueError, IndexError, TypeError, AttributeError):
            raise SettingsError(f"environment variable {name} does not name a configuration value") from None


def summarise(error: ValidationError) -> str:
    """Pydantic's errors as one line: `where: what; where: what`."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in error.errors())
