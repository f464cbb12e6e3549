from __future__ import annotations

import io
import json
import logging
import threading
import time
from pathlib import Path

import pytest

from edge_agent.agent import Device, EdgeAgent
from edge_agent.clock import SimulatedClock, WallClock
from edge_agent.config import AgentSettings, MqttConfig, load_config
from edge_agent.errors import AgentAlreadyRunning, InsecureSecretFile
from edge_agent.keystore import FileKeyStore
from managed_services._process import free_port
from mrv_common.logs import JsonFormatter
from protocol import Ed25519Signer, Metric, Reading
from tests.edge_agent.helpers import CounterSource, check_chains

T0 = 1_750_000_000_000


def settings(tmp_path: Path, **mqtt: object) -> AgentSettings:
    # Nothing listens on a fresh free port: these agents never reach a broker.
    return AgentSettings(data_dir=tmp_path / "data", interval_s=1,
                         mqtt=MqttConfig.model_validate({"port": free_port(), **mqtt}))


def device(device_id: str, source: object | None = None) -> Device:
    return Device(device_id, "park", source or CounterSource(), Ed25519Signer.generate())  # type: ignore[arg-type]


class BadReadings:
    def read(self, now_ms: int) -> list[Reading]:
        return [Reading(Metric.ENERGY_EXPORT_WH, now_ms, -5)]  # a register cannot be negative

    def close(self) -> None:
        pass


class Crashing:
    def read(self, now_ms: int) -> list[Reading]:
        raise KeyError("bug")

    def close(self) -> None:
        pass


def test_sample_once_persists_one_envelope_per_device(tmp_path: Path) -> None:
    devices = [device("inv-1"), device("inv-2")]
    with EdgeAgent(settings(tmp_path), devices, WallClock()) as agent:
        for i in range(3):
            result = agent.sample_once(T0 + i * 1000)
            assert [(a.device_id, a.seq) for a in result.appended] == [("inv-1", i), ("inv-2", i)]
        copies = [raw for d in ("inv-1", "inv-2") for _, raw in agent.outbox.pending(d, -1, 10)]
        check_chains(copies, {d.device_id: d.signer.public_key for d in devices}, {"inv-1": 3, "inv-2": 3})


def test_a_failing_source_skips_only_its_device_and_interval(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    devices = [device("inv-1", CounterSource(fail_on=[2])), device("inv-2"),
               device("inv-3", BadReadings()), device("inv-4", Crashing())]
    with EdgeAgent(settings(tmp_path), devices) as agent:
        results = [agent.sample_once(T0 + i * 1000) for i in range(3)]
    assert [[a.device_id for a in r.appended] for r in results] == [["inv-1", "inv-2"], ["inv-2"],
                                                                     ["inv-1", "inv-2"]]
    assert results[2].appended[0].seq == 1  # the skipped interval consumed no seq
    assert [i.device_id for i in results[0].invalid] == ["inv-3"]
    messages = [(r.getMessage(), r.levelname) for r in caplog.records]
    assert ("source_failed", "WARNING") in messages
    assert ("invalid_readings", "ERROR") in messages
    assert ("source_crashed", "ERROR") in messages


def test_logs_are_json_lines_with_device_and_seq_and_no_secrets(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("edge_agent")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    signer = Ed25519Signer.generate()
    try:
        dev = Device("inv-1", "park", CounterSource(), signer, "pw-secret")
        with EdgeAgent(settings(tmp_path), [dev]) as agent:
            agent.sample_once(T0)
            [(_, raw)] = agent.outbox.pending("inv-1", -1, 1)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    appended = next(e for e in events if e["event"] == "appended")
    assert (appended["device_id"], appended["seq"], appended["level"]) == ("inv-1", 0, "debug")
    text = stream.getvalue()
    assert raw.hex() not in text and signer.seed.hex() not in text and "pw-secret" not in text
    assert "pw-secret" not in repr(dev)


def test_a_second_agent_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = EdgeAgent(settings(tmp_path), [device("inv-1")])
    with first, pytest.raises(AgentAlreadyRunning, match="another agent"):
        EdgeAgent(settings(tmp_path), [device("inv-1")])
    with EdgeAgent(settings(tmp_path), [device("inv-1")]):
        pass  # the lock is released on close


def test_sampling_never_waits_for_an_unreachable_broker(tmp_path: Path) -> None:
    """The sampler and the publisher share only the outbox: with no broker, readings still land
    on time (here 100 intervals per real second on a simulated clock)."""
    devices = [device("inv-1"), device("inv-2")]
    with EdgeAgent(settings(tmp_path, reconnect_min_s=0.05, reconnect_max_s=0.1), devices,
                   SimulatedClock(100)) as agent:
        thread = threading.Thread(target=agent.run)
        thread.start()
        time.sleep(1.5)
        stopping = time.monotonic()
        agent.stop()
        thread.join(10)
        assert not thread.is_alive() and time.monotonic() - stopping < 2
        status = {d.device_id: d for d in agent.outbox.status().devices}
    assert all(d.queued == d.next_seq >= 100 for d in status.values())
    assert {(d.receipted_seq, d.published) for d in status.values()} == {(None, 0)}


def test_from_config_loads_keys_passwords_and_sources(tmp_path: Path) -> None:
    FileKeyStore({"inv-1": tmp_path / "inv-1.key"}).generate("inv-1")
    password = tmp_path / "inv-1.password"
    password.write_text("s3cret\n")
    password.chmod(0o600)
    config_file = tmp_path / "edge.toml"
    config_file.write_text(f"""
data_dir = "data"
[mqtt]
port = {free_port()}
[[devices]]
device_id = "inv-1"
project_id = "park"
key_file = "inv-1.key"
password_file = "inv-1.password"
[devices.source]
type = "simulated"
kind = "wind"
""")
    config = load_config(config_file, environ={})
    with EdgeAgent.from_config(config) as agent:
        [dev] = agent.devices
        assert dev.password == "s3cret"
        assert dev.signer.kid == FileKeyStore({"inv-1": tmp_path / "inv-1.key"}).signer("inv-1").kid
        assert agent.sample_once(T0).appended[0].device_id == "inv-1"
    password.chmod(0o640)
    with pytest.raises(InsecureSecretFile):
        EdgeAgent.from_config(config)
