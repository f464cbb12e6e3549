"""The console configuration: TOML, environment overrides, command-line overrides, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrv_engine.console.config import ConsoleConfigError, load_config


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config_file = tmp_path / "console.toml"
    config_file.write_text('conninfo = "dbname=mrv"\nport = 9000\nprojects_dir = "projects"\nsecure_cookies = true\n')
    config = load_config(config_file, {"MRV_CONSOLE__PORT": "9100", "MRV_CONSOLE__SESSION_TTL_S": "600",
                                       "OTHER": "x"}, host="0.0.0.0", port=None)
    assert (config.conninfo, config.port, config.session_ttl_s, config.host) == ("dbname=mrv", 9100, 600, "0.0.0.0")
    assert config.projects_dir == tmp_path / "projects" and config.secure_cookies
    assert load_config(config_file, {}, port=8000).port == 8000
    assert load_config(None, {}).port == 8700


@pytest.mark.parametrize(("text", "env", "message"), [
    ("port = 70000\n", {}, "port"),
    ("colour = 1\n", {}, "colour"),
    ("port = \n", {}, "not valid TOML"),
    ("", {"MRV_CONSOLE__SESSION_TTL_S": "1"}, "session_ttl_s"),
])
def test_bad_configuration_is_one_clear_line(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    config_file = tmp_path / "console.toml"
    config_file.write_text(text)
    with pytest.raises(ConsoleConfigError, match=message) as e:
        load_config(config_file, env)
    assert "\n" not in str(e.value)


def test_the_example_configuration_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "mrv_engine" / "console" / "console.example.toml"
    assert load_config(example, {}).port == 8700
