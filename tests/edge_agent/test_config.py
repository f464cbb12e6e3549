from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import EdgeConfig, load_config
from edge_agent.errors import ConfigError
from edge_agent.outbox import OverflowPolicy
from edge_agent.sources import SimulatedSourceConfig, SunSpecSourceConfig

EXAMPLE = Path(__file__).parents[2] / "deploy" / "edge.example.toml"

MINIMAL = """
data_dir = "var"
[[devices]]
device_id = "inv-1"
project_id = "park"
key_file = "keys/inv-1.key"
[devices.source]
type = "simulated"
kind = "pv"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_the_shipped_example_is_valid() -> None:
    config = load_config(EXAMPLE, environ={})
    assert config.mqtt.tls and config.mqtt.port == 8883
    assert config.outbox.policy is OverflowPolicy.DROP_OLDEST
    assert [d.device_id for d in config.devices] == ["inv-1", "meter-poc"]
    assert isinstance(config.devices[0].source, SunSpecSourceConfig)


def test_defaults_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})
    assert config.data_dir == tmp_path / "var"
    assert config.outbox_path == tmp_path / "var" / "outbox.sqlite"
    assert config.devices[0].key_file == tmp_path / "keys" / "inv-1.key"
    assert (config.interval_s, config.mqtt.protocol, config.mqtt.max_inflight) == (10.0, "5", 1000)
    assert isinstance(config.devices[0].source, SimulatedSourceConfig)


def test_environment_overrides(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={
        "MRV_EDGE__MQTT__HOST": "broker.lan", "MRV_EDGE__MQTT__PORT": "8883", "MRV_EDGE__MQTT__TLS": "true",
        "MRV_EDGE__OUTBOX__POLICY": "refuse_new", "MRV_EDGE__DEVICES__0__PASSWORD_FILE": "/run/secrets/inv-1",
        "MRV_EDGE__DEVICES__0__SOURCE__SEED": "9", "UNRELATED": "x"})
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("broker.lan", 8883, True)
    assert config.outbox.policy is OverflowPolicy.REFUSE_NEW
    assert config.devices[0].password_file == Path("/run/secrets/inv-1")
    source = config.devices[0].source
    assert isinstance(source, SimulatedSourceConfig) and source.seed == 9


@pytest.mark.parametrize(("addition", "message"), [
    ("[mqtt]\nport = 70000", "mqtt.port: Input should be less than or equal to 65535"),
    ("[mqtt]\nhots = 'x'", "mqtt.hots: Extra inputs are not permitted"),
    ("[mqtt]\ntls = true\ncert_file = 'c.pem'", "cert_file and key_file go together"),
    ("[mqtt]\nca_file = 'ca.pem'", "TLS files are set but tls = false"),
    ("[mqtt]\nreconnect_min_s = 10\nreconnect_max_s = 1", "reconnect_min_s must not exceed"),
    ("[outbox]\npolicy = 'drop_newest'", "outbox.policy: Input should be 'drop_oldest' or 'refuse_new'"),
    ("[outbox]\nmax_bytes = 1000", "outbox.max_bytes: Input should be greater than or equal to"),
    ("interval_s = 0", "interval_s: Input should be greater than 0"),
])
def test_invalid_values_are_named_in_one_line(tmp_path: Path, addition: str, message: str) -> None:
    top, tables = (addition, "") if not addition.startswith("[") else ("", addition)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, top + "\n" + MINIMAL + "\n" + tables), environ={})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_device_errors(tmp_path: Path) -> None:
    twice = MINIMAL + MINIMAL.replace('data_dir = "var"', "")
    with pytest.raises(ConfigError, match="device inv-1 is listed twice"):
        load_config(write(tmp_path, twice), environ={})
    with pytest.raises(ConfigError, match=r"devices\.0\.device_id: Value error, invalid id 'inv/1'"):
        load_config(write(tmp_path, MINIMAL.replace('"inv-1"', '"inv/1"')), environ={})
    with pytest.raises(ConfigError, match=r"devices\.0\.source"):
        load_config(write(tmp_path, MINIMAL.replace('"simulated"', '"modbus-rtu"')), environ={})
    with pytest.raises(ConfigError, match="devices: Field required"):
        load_config(write(tmp_path, 'data_dir = "var"'), environ={})


def test_unreadable_invalid_toml_and_bad_overrides(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "data_dir = "), environ={})
    with pytest.raises(ConfigError, match="MRV_EDGE__DEVICES__3__KEY_FILE does not name"):
        load_config(write(tmp_path, MINIMAL), environ={"MRV_EDGE__DEVICES__3__KEY_FILE": "x"})


def test_a_config_is_immutable(tmp_path: Path) -> None:
    config: EdgeConfig = load_config(write(tmp_path, MINIMAL), environ={})
    with pytest.raises(ValueError, match="frozen"):
        config.mqtt.port = 1
