"""Fault tests with workers as real subprocesses (`mrv ingest run`): R1 kill -9 mid-load, R3 PostgreSQL
restarted mid-load, and two workers sharing the subscription. Reported as attempts, lost, duplicated."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from managed_services._process import free_port
from managed_services.mosquitto import Mosquitto
from managed_services.postgres import Postgres
from protocol import parse_envelope
from tests.ingest.helpers import (
    READINGS_PER_ENVELOPE,
    BackgroundLoad,
    Device,
    count,
    enroll,
    wait_until,
    worker_process,
)
from tests.ingest.test_worker import sample, scrape

pytestmark = [pytest.mark.integration, pytest.mark.slow]
Workers = list[subprocess.Popen[bytes]]


@pytest.fixture
def workers() -> Iterator[Workers]:
    """Worker subprocesses started by a test; whatever is still running at the end is killed."""
    started: Workers = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _load(project_id: str, conninfo: str, n_devices: int, per_device: int) -> list[tuple[str, bytes]]:
    devices = [Device(f"m-{i}", project_id) for i in range(n_devices)]
    enroll(conninfo, devices)
    return [(d.topic, d.next()) for _ in range(per_device) for d in devices]


def _audit(conninfo: str, items: list[tuple[str, bytes]]) -> tuple[int, int]:
    """(lost, duplicated): published (device, seq) missing; envelope or readings rows beyond one each."""
    with psycopg.connect(conninfo) as conn:
        stored = conn.execute("SELECT device_id, seq, count(*) FROM envelopes GROUP BY 1, 2").fetchall()
        readings = conn.execute("SELECT count(*) FROM readings").fetchone()
    per_key = {(d, s): c for d, s, c in stored}
    published = {(p.device_id, p.seq) for p in (parse_envelope(raw).payload for _, raw in items)}
    lost = len(published - set(per_key))
    extra_readings = (readings[0] if readings else 0) - len(per_key) * READINGS_PER_ENVELOPE
    return lost, sum(c - 1 for c in per_key.values()) + max(0, extra_readings)


def _running(proc: subprocess.Popen[bytes], log: Path) -> None:
    def connected() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        return "broker_connected" in log.read_text()

    wait_until(connected, 20, "the worker to connect")


def test_kill_9_mid_load_ten_times_loses_and_duplicates_nothing(pg_conninfo: str, mosquitto: Mosquitto,
                                                                  project_id: str, workers: Workers,
                                                                  tmp_path: Path) -> None:
    items = _load(project_id, pg_conninfo, 20, 250)
    log = tmp_path / "worker.log"
    rng = random.Random(1)
    proc = worker_process(pg_conninfo, mosquitto.port, "ingest-r1", log)
    workers.append(proc)
    _running(proc, log)
    load = BackgroundLoad(mosquitto.port, items, rate=250)  # lasts longer than the ten kills
    kills = 0
    for _ in range(10):
        before = count(pg_conninfo, "envelopes")

        def progressed(before: int = before) -> bool:
            return count(pg_conninfo, "envelopes") > before

        wait_until(progressed, 20, "progress before the kill")
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        log.write_text("")
        proc = worker_process(pg_conninfo, mosquitto.port, "ingest-r1", log)
        workers.append(proc)
        _running(proc, log)
    assert not load.done, "the load ended before the last kill: not mid-load any more"
    load.join()
    wait_until(lambda: count(pg_conninfo, "envelopes") == len(items), 60, "every envelope stored")
    lost, duplicated = _audit(pg_conninfo, items)
    print(f"R1: attempts {kills}, published {len(items)}, lost {lost}, duplicated {duplicated}")
    assert (kills, lost, duplicated) == (10, 0, 0)
    assert count(pg_conninfo, "readings") == len(items) * READINGS_PER_ENVELOPE
    assert count(pg_conninfo, "quarantine") == 0


def test_postgres_restart_mid_load(pg_conninfo: str, postgres_session: Postgres, mosquitto: Mosquitto,
                                   project_id: str, workers: Workers, tmp_path: Path) -> None:
    items = _load(project_id, pg_conninfo, 20, 100)
    log = tmp_path / "worker.log"
    proc = worker_process(pg_conninfo, mosquitto.port, "ingest-r3", log)
    workers.append(proc)
    _running(proc, log)
    load = BackgroundLoad(mosquitto.port, items, rate=600)
    wait_until(lambda: count(pg_conninfo, "envelopes") > 200, 20, "progress before the restart")
    postgres_session.stop()
    time.sleep(1.5)  # the worker keeps receiving, acks nothing, backs off
    postgres_session.start()
    back = time.monotonic()
    stored_at_restart = count(pg_conninfo, "envelopes")
    wait_until(lambda: count(pg_conninfo, "envelopes") > stored_at_restart, 10, "ingest to resume (R3: 10 s)",
               interval=0.05)
    resumed_after = time.monotonic() - back
    load.join()
    wait_until(lambda: count(pg_conninfo, "envelopes") == len(items), 60, "every envelope stored")
    lost, duplicated = _audit(pg_conninfo, items)
    print(f"R3: resumed {resumed_after:.2f} s after PostgreSQL was back; lost {lost}, "
          f"duplicated {duplicated}")
    assert (lost, duplicated) == (0, 0) and resumed_after < 10
    assert proc.poll() is None and "batch_retry" in log.read_text()


def test_two_workers_share_the_subscription(pg_conninfo: str, mosquitto: Mosquitto, project_id: str,
                                            workers: Workers, tmp_path: Path) -> None:
    items = _load(project_id, pg_conninfo, 30, 60)
    ports = [free_port(), free_port()]
    for i, port in enumerate(ports):
        log = tmp_path / f"worker-{i}.log"
        proc = worker_process(pg_conninfo, mosquitto.port, f"ingest-{i}", log, http__port=str(port))
        workers.append(proc)
        _running(proc, log)
    BackgroundLoad(mosquitto.port, items, rate=2000).join()
    wait_until(lambda: count(pg_conninfo, "envelopes") == len(items), 60, "every envelope stored")
    stored = [sample(scrape(port)[1], "mrv_ingest_stored_total") for port in ports]
    duplicates = [sample(scrape(port)[1], "mrv_ingest_duplicates_total") for port in ports]
    lost, duplicated = _audit(pg_conninfo, items)
    print(f"shared subscription: stored per worker {stored}, lost {lost}, duplicated {duplicated}")
    assert (lost, duplicated) == (0, 0)
    assert sum(stored) == len(items) and min(stored) > 0 and duplicates == [0, 0]
    for proc in workers:
        proc.send_signal(signal.SIGTERM)
    for proc in workers:
        assert proc.wait(15) == 0
