"""The worker end to end: real broker, real database; counts equal, health and metrics endpoint,
configuration."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from ingest.config import load_config
from ingest.errors import ConfigError
from managed_services._process import free_port
from managed_services.mosquitto import Mosquitto
from tests.ingest.helpers import (
    READINGS_PER_ENVELOPE,
    Device,
    TestPublisher,
    count,
    enroll,
    running_worker,
    wait_until,
)


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


@pytest.mark.integration
def test_every_published_envelope_is_stored_with_its_readings(pg_conninfo: str, mosquitto: Mosquitto,
                                                              project_id: str) -> None:
    devices = [Device(f"inv-{i}", project_id) for i in range(25)]
    enroll(pg_conninfo, devices)
    items = [(d.topic, d.next(n=1 + (i + j) % READINGS_PER_ENVELOPE))
             for i in range(40) for j, d in enumerate(devices)]
    expected_readings = sum(1 + (i + j) % READINGS_PER_ENVELOPE for i in range(40) for j in range(25))
    http_port = free_port()
    publisher = TestPublisher(mosquitto.port, "gateway")
    with running_worker(pg_conninfo, mosquitto.port, http__port=str(http_port)) as worker:
        publisher.publish(items)
        wait_until(lambda: count(pg_conninfo, "envelopes") == len(items), 30, "every envelope stored")
        # The counters move after the commit and the acks, a moment after the rows are visible.
        wait_until(lambda: worker.metrics.stored == len(items), 10, "every envelope counted")
        status, health = scrape(http_port, "/healthz")
        assert status == 200 and json.loads(health) == {"broker_connected": True, "database_up": True}
        _, metrics = scrape(http_port)
    publisher.close()
    assert count(pg_conninfo, "readings") == expected_readings
    assert count(pg_conninfo, "quarantine") == 0 and count(pg_conninfo, "chain_events") == 0
    assert sample(metrics, "mrv_ingest_received_total") == len(items)
    assert sample(metrics, "mrv_ingest_stored_total") == len(items)
    assert sample(metrics, "mrv_ingest_readings_total") == expected_readings
    assert sample(metrics, "mrv_ingest_batch_seconds_count") >= 1
    with psycopg.connect(pg_conninfo) as conn:
        heads = conn.execute("SELECT count(*) FROM device_chain WHERE last_seq = 39").fetchone()
        exact = conn.execute("SELECT count(*) FROM readings WHERE metric = 1 AND value >= 1000000 "
                             "AND value = trunc(value)").fetchone()
    assert heads == (25,)
    assert exact is not None and exact[0] > 0


def test_configuration_from_file_and_environment(tmp_path: Path) -> None:
    config_file = tmp_path / "ingest.toml"
    config_file.write_text('[broker]\nhost = "broker.lan"\npassword_file = "secrets/ingest.password"\n'
                           "[batch]\nmax_messages = 200\n")
    config = load_config(config_file, {"MRV_INGEST__BATCH__MAX_DELAY_MS": "20",
                                       "MRV_INGEST__CHECKS__FUTURE_TOLERANCE_S": "60"})
    assert config.broker.host == "broker.lan" and config.batch.max_messages == 200
    assert config.batch.max_delay_ms == 20 and config.checks.policy().future_tolerance_ms == 60_000
    assert config.broker.password_file == tmp_path / "secrets" / "ingest.password"
    with pytest.raises(ConfigError, match="cannot read the broker password file"):
        config.broker.password()
    with pytest.raises(ConfigError, match="receive_maximum"):
        load_config(None, {"MRV_INGEST__BATCH__MAX_MESSAGES": "9000",
                           "MRV_INGEST__BROKER__RECEIVE_MAXIMUM": "100"})
    with pytest.raises(ConfigError, match=r"batch\.max_messages"):
        load_config(None, {"MRV_INGEST__BATCH__MAX_MESSAGES": "many"})
    with pytest.raises(ConfigError, match="does not name"):
        load_config(config_file, {"MRV_INGEST__BROKER__HOST__X": "1"})
    with pytest.raises(ConfigError, match=r"broker\.hots: Extra inputs"):
        load_config(None, {"MRV_INGEST__BROKER__HOTS": "typo"})


def test_the_example_configuration_shows_the_defaults() -> None:
    import ingest

    example = Path(ingest.__file__).parent / "ingest.example.toml"
    shown = load_config(example, {}).model_dump()
    defaults = load_config(None, {}).model_dump()
    assert shown["broker"].pop("password_file").name == "ingest.password"
    defaults["broker"].pop("password_file")
    assert shown == defaults


@pytest.mark.integration
def test_the_worker_reconnects_after_a_broker_restart(pg_conninfo: str, mosquitto: Mosquitto,
                                                      project_id: str) -> None:
    devices = [Device(f"inv-{i}", project_id) for i in range(10)]
    enroll(pg_conninfo, devices)
    first = [(d.topic, d.next()) for _ in range(20) for d in devices]
    second = [(d.topic, d.next()) for _ in range(20) for d in devices]
    with running_worker(pg_conninfo, mosquitto.port) as worker:
        publisher = TestPublisher(mosquitto.port, "gateway")
        publisher.publish(first)
        publisher.close()
        mosquitto.restart()  # graceful: the broker keeps the worker's session and subscription
        wait_until(lambda: worker.metrics.broker_connected, 15, "the worker to reconnect")
        publisher = TestPublisher(mosquitto.port, "gateway")
        publisher.publish(second)
        publisher.close()
        wait_until(lambda: count(pg_conninfo, "envelopes") == len(first) + len(second), 30, "every envelope")
    assert count(pg_conninfo, "chain_events") == 0
