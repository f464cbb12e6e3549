"""Test devices that sign real envelopes, registry set-up, a QoS 1 publisher and database probes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from ingest.config import load_config
from ingest.registry import MeterRole, PlantKind, enroll_device
from ingest.worker import IngestWorker
from protocol import (
    GENESIS_PREV,
    Ed25519Signer,
    Metric,
    Payload,
    PublicKeyRecord,
    Reading,
    envelope_hash,
    sign_envelope,
    up_topic,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
READINGS_PER_ENVELOPE = 10
_METRICS = (Metric.ENERGY_EXPORT_WH, Metric.ENERGY_IMPORT_WH, Metric.ACTIVE_POWER_W, Metric.IRRADIANCE_W_M2,
            Metric.AMBIENT_TEMPERATURE_C, Metric.MODULE_TEMPERATURE_C, Metric.FREQUENCY_HZ,
            Metric.WIND_SPEED_M_S)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def readings(time_ms: int, seq: int, n: int = READINGS_PER_ENVELOPE) -> tuple[Reading, ...]:
    """`n` plausible readings at one interval: registers as integers, the rest as floats."""
    out = []
    for i in range(n):
        metric = _METRICS[i % len(_METRICS)]
        ts = time_ms - (i // len(_METRICS)) * 1000
        if metric in (Metric.ENERGY_EXPORT_WH, Metric.ENERGY_IMPORT_WH):
            out.append(Reading(metric, ts, 1_000_000 + seq * 1_000 + i))
        else:
            out.append(Reading(metric, ts, 10.0 + (seq % 37) + i / 8))
    return tuple(out)


@dataclass
class Device:
    """A simulated gateway device: its key, and the next seq and prev of its hash chain."""

    device_id: str
    project_id: str
    signer: Ed25519Signer = field(default_factory=Ed25519Signer.generate)
    seq: int = 0
    prev: bytes = GENESIS_PREV

    @property
    def topic(self) -> str:
        return up_topic(self.project_id, self.device_id)

    @property
    def record(self) -> PublicKeyRecord:
        return PublicKeyRecord(self.device_id, self.signer.public_key)

    def build(self, seq: int, prev: bytes, time_ms: int | None = None, n: int = READINGS_PER_ENVELOPE,
              signer: Ed25519Signer | None = None) -> bytes:
        t = now_ms() if time_ms is None else time_ms
        payload = Payload(self.device_id, seq, prev, t, readings(t, seq, n))
        return sign_envelope(payload, signer or self.signer)

    def next(self, time_ms: int | None = None, n: int = READINGS_PER_ENVELOPE) -> bytes:
        """The next envelope of the chain (advances seq and prev)."""
        raw = self.build(self.seq, self.prev, time_ms, n)
        self.seq += 1
        self.prev = envelope_hash(raw)
        return raw


def enroll(conninfo: str, devices: Iterable[Device], valid_from_ms: int = T0 - 86_400_000) -> dict[str, str]:
    """Enroll each device; returns their broker passwords."""
    valid_from = dt.datetime.fromtimestamp(valid_from_ms / 1000, dt.UTC)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return {d.device_id: enroll_device(conn, d.record, project_id=d.project_id, role=MeterRole.MAIN,
                                           kind=PlantKind.PV, capacity_w=5_000_000, valid_from=valid_from)
                for d in devices}


def scalar(conninfo: str, query: str, params: list[object] | None = None) -> object:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    return None if row is None else row[0]


def count(conninfo: str, table: str) -> int:
    from psycopg import sql

    with psycopg.connect(conninfo) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row[0])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class TestPublisher:
    """A QoS 1 publisher that waits for every PUBACK (anonymous, or with credentials)."""

    __test__ = False  # not a test class

    def __init__(self, port: int, client_id: str, username: str | None = None,
                 password: str | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_inflight_messages_set(1000)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, items: Iterable[tuple[str, bytes]], timeout: float = 60.0) -> None:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in items]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            assert info.is_published(), "the broker did not acknowledge a publish"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def worker_environ(conninfo: str, broker_port: int, client_id: str, **settings: str) -> dict[str, str]:
    """MRV_INGEST__ settings for a worker against the test broker (anonymous) and database."""
    environ = {"MRV_INGEST__BROKER__HOST": "127.0.0.1", "MRV_INGEST__BROKER__PORT": str(broker_port),
               "MRV_INGEST__BROKER__CLIENT_ID": client_id, "MRV_INGEST__DATABASE__CONNINFO": conninfo,
               "MRV_INGEST__HTTP__PORT": "0", "MRV_INGEST__VERIFY__PROCESSES": "0",
               "MRV_INGEST__BATCH__RETRY_MAX_S": "0.5"}
    environ.update({f"MRV_INGEST__{k.upper()}": v for k, v in settings.items()})
    return environ


@contextmanager
def running_worker(conninfo: str, broker_port: int, client_id: str = "ingest-test",
                   clock_ms: Callable[[], int] | None = None, **settings: str) -> Iterator[IngestWorker]:
    """An ingest worker in a thread of this process, connected before the block starts (`clock_ms`: its
    arrival clock, see `IngestWorker`)."""
    worker = IngestWorker(load_config(None, worker_environ(conninfo, broker_port, client_id, **settings)), clock_ms)
    thread = threading.Thread(target=worker.run, name=f"worker-{client_id}")
    thread.start()
    try:
        wait_until(lambda: worker.metrics.broker_connected, 10, "the worker to connect")
        yield worker
    finally:
        worker.stop()
        thread.join(10)


def worker_process(conninfo: str, broker_port: int, client_id: str, log: Path,
                   **settings: str) -> subprocess.Popen[bytes]:
    """`mrv ingest run` as a real subprocess (its log appended to `log`)."""
    env = dict(os.environ, **worker_environ(conninfo, broker_port, client_id, **settings))
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mrv_cli", "ingest", "run"], env=env, stdout=out,
                                stderr=out)


class BackgroundLoad:
    """Publishes `items` from a thread at about `rate` messages per second; `join()` waits for every
    PUBACK. The broker queues what arrives while no worker is connected (persistent session)."""

    def __init__(self, port: int, items: list[tuple[str, bytes]], rate: float, chunk: int = 50) -> None:
        self._publisher = TestPublisher(port, f"load-{time.monotonic_ns()}")
        self._items, self._rate, self._chunk = items, rate, chunk
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="background-load")
        self._thread.start()

    def _run(self) -> None:
        try:
            start = time.monotonic()
            for i in range(0, len(self._items), self._chunk):
                self._publisher.publish(self._items[i:i + self._chunk])
                ahead = start + (i + self._chunk) / self._rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except BaseException as e:  # re-raised by join()
            self._error = e

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float = 120.0) -> None:
        self._thread.join(timeout)
        self._publisher.close()
        if self._error is not None:
            raise self._error
        assert not self._thread.is_alive(), "the load did not finish"
