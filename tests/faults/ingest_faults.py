"""Ingest under faults, with workers as real `mrv ingest run` subprocesses: R1 (kill -9 of a worker
mid-load), R3 (PostgreSQL restarted mid-load) and R10 (two workers and two racing sequencers killed at
random while envelopes keep arriving)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from anchoring import Verifier
from managed_services.postgres import Postgres
from protocol import parse_envelope
from tests.anchoring.log_checks import check_log
from tests.faults.record import FaultResult, settle, timed
from tests.ingest.helpers import READINGS_PER_ENVELOPE, BackgroundLoad, Device, count, enroll, worker_process

Items = list[tuple[str, bytes]]
LOG_ORIGIN = "faults.example/mrv-log"


def signed_load(project_id: str, conninfo: str, n_devices: int, per_device: int) -> Items:
    """Enrolled devices' envelopes, round-robin over the devices (so each device's chain is in order)."""
    devices = [Device(f"m-{i}", project_id) for i in range(n_devices)]
    enroll(conninfo, devices)
    return [(d.topic, d.next()) for _ in range(per_device) for d in devices]


def audit(result: FaultResult, conninfo: str, items: Items) -> None:
    """Set lost (published (device, seq) not stored), duplicated (envelope or reading rows beyond one
    each) and wrongly accepted (stored envelopes nobody published) from the database."""
    with psycopg.connect(conninfo) as conn:
        stored = conn.execute("SELECT device_id, seq, count(*) FROM envelopes GROUP BY 1, 2").fetchall()
        readings = conn.execute("SELECT count(*) FROM readings").fetchone()
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()
    per_key = {(d, s): c for d, s, c in stored}
    published = {(p.device_id, p.seq) for p in (parse_envelope(raw).payload for _, raw in items)}
    extra_readings = (readings[0] if readings else 0) - len(per_key) * READINGS_PER_ENVELOPE
    result.lost = len(published - set(per_key))
    result.duplicated = sum(c - 1 for c in per_key.values()) + max(0, extra_readings)
    result.wrongly_accepted = len(set(per_key) - published)
    result.details.update(published=len(published), stored=len(per_key))
    result.check(quarantined == (0,), f"valid envelopes quarantined: {quarantined}")


class Workers:
    """`mrv ingest run` subprocesses by name, each with its own log; all killed on exit."""

    def __init__(self, conninfo: str, broker_port: int, logs: Path) -> None:
        self.conninfo, self.broker_port, self.logs = conninfo, broker_port, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, **settings: str) -> subprocess.Popen[bytes]:
        log = self.logs / f"{name}.log"
        log.write_text("")
        proc = worker_process(self.conninfo, self.broker_port, name, log, **settings)
        self.procs[name] = proc

        def connected() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            return "broker_connected" in log.read_text()

        assert settle(connected, 30), f"worker {name} did not connect: {log.read_text()[-3000:]}"
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name)


@contextmanager
def workers(conninfo: str, broker_port: int, logs: Path) -> Iterator[Workers]:
    started = Workers(conninfo, broker_port, logs)
    try:
        yield started
    finally:
        started.close()


def r1_worker_kills(conninfo: str, broker_port: int, workdir: Path, project_id: str, *, kills: int = 10,
                    devices: int = 20, per_device: int = 250, rate: float = 250) -> FaultResult:
    """R1: a worker under load is killed with SIGKILL `kills` times and restarted. The load comes in
    one slice per kill, so that every kill lands mid-load (envelopes still arriving, or published and
    not yet stored) however slowly the machine restarts workers; every envelope must end up stored
    exactly once."""
    result = FaultResult("R1", f"kill -9 of an ingest worker mid-load ({rate:.0f} msg/s)")
    with timed(result), workers(conninfo, broker_port, workdir) as running:
        items = signed_load(project_id, conninfo, devices, per_device)
        size = -(-len(items) // kills)
        rng = random.Random(1)
        mid_load = 0
        running.start("ingest-r1")
        for i in range(0, len(items), size):
            before = count(conninfo, "envelopes")
            load = BackgroundLoad(broker_port, items[i:i + size], rate=rate)

            def progressed(before: int = before) -> bool:
                return count(conninfo, "envelopes") > before

            result.check(settle(progressed, 20), f"no progress before kill {result.attempts + 1}")
            time.sleep(rng.uniform(0.05, 0.4))
            # Mid-load: envelopes still arriving, or published and not yet stored.
            mid_load += not load.done or count(conninfo, "envelopes") < i + size
            running.kill("ingest-r1")
            result.attempts += 1
            load.join()  # the broker acknowledges and queues what the dead worker cannot take
            running.start("ingest-r1")
        result.details["kills_while_loading"] = mid_load
        result.check(mid_load == result.attempts, f"only {mid_load} of {result.attempts} kills were mid-load")
        settle(lambda: count(conninfo, "envelopes") >= len(items), 60)
        audit(result, conninfo, items)
    return result


def r3_postgres_restart(conninfo: str, postgres: Postgres, broker_port: int, workdir: Path,
                        project_id: str, *, down_s: float = 1.5) -> FaultResult:
    """R3: PostgreSQL is stopped for `down_s` while a worker ingests, then started again; the worker
    must resume by itself within 10 s and store everything once."""
    result = FaultResult("R3", "PostgreSQL restart mid-load")
    with timed(result), workers(conninfo, broker_port, workdir) as running:
        items = signed_load(project_id, conninfo, 20, 100)
        running.start("ingest-r3")
        load = BackgroundLoad(broker_port, items, rate=600)
        result.check(settle(lambda: count(conninfo, "envelopes") > 200, 20), "no progress before the restart")
        postgres.stop()
        time.sleep(down_s)  # the worker keeps receiving, acknowledges nothing, backs off
        postgres.start()
        result.attempts = 1
        back = time.monotonic()
        stored_at_restart = count(conninfo, "envelopes")
        resumed = settle(lambda: count(conninfo, "envelopes") > stored_at_restart, 10, interval=0.05)
        resumed_after = time.monotonic() - back
        result.details["resumed_after_s"] = round(resumed_after, 2)
        result.check(resumed, "ingest did not resume within 10 s of PostgreSQL's return")
        load.join()
        settle(lambda: count(conninfo, "envelopes") >= len(items), 60)
        audit(result, conninfo, items)
        result.check(running.procs["ingest-r3"].poll() is None, "the worker exited")
        result.check("batch_retry" in running.log("ingest-r3"), "the worker never retried a batch")
    return result


def _sequencer_args(conninfo: str, key: Path, ledger: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mrv_cli", "anchor", "run", "--conninfo", conninfo, "--log-key", str(key),
            "--ledger", f"local:{ledger}", "--poll", "0.05", "--batch", "50", "--anchor-every", "0.5",
            "--log-level", "WARNING", *extra]


def _sequencer(conninfo: str, key: Path, ledger: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(_sequencer_args(conninfo, key, ledger), stdout=out, stderr=out)


def r10_random_restarts(conninfo: str, broker_port: int, workdir: Path, project_id: str, *,
                        restarts: int = 8, seconds: float = 0, rate: float = 200) -> FaultResult:
    """R10: two ingest workers sharing the subscription and two sequencers racing for the log's lock;
    every 0.3–1 s one of the four, at random, is killed (SIGKILL) while envelopes arrive, and restarted:
    at least `restarts` times and for at least `seconds`. Afterwards: every published envelope stored
    once, the log consistent (signed checkpoints that extend each other, leaves 0..n-1 matching their
    envelopes) and every stored envelope in exactly one leaf."""
    result = FaultResult("R10", f"2 ingest workers + 2 sequencers killed at random ({restarts} times"
                         + (f", {seconds:.0f} s)" if seconds else ")"))
    key = workdir / "log.key"
    vkey = subprocess.run([sys.executable, "-m", "mrv_cli", "anchor", "keygen", "--log-key", str(key),
                           "--origin", LOG_ORIGIN], capture_output=True, text=True, check=True).stdout.strip()
    ledger = workdir / "ledger.jsonl"
    seq_log = workdir / "sequencers.log"
    sequencers: list[subprocess.Popen[bytes]] = []
    devices = [Device(f"m-{i}", project_id) for i in range(20)]
    enroll(conninfo, devices)
    items: Items = []
    with timed(result), workers(conninfo, broker_port, workdir) as running:
        try:
            for name in ("ingest-a", "ingest-b"):
                running.start(name)
            sequencers += [_sequencer(conninfo, key, ledger, seq_log) for _ in range(2)]
            rng = random.Random(10)
            mid_load = 0
            deadline = time.monotonic() + seconds
            while result.attempts < restarts or time.monotonic() < deadline:
                pause = rng.uniform(0.3, 1.0)
                # A slice of load per restart, so that each kill lands while envelopes arrive.
                batch = [(d.topic, d.next()) for _ in range(int(rate * pause / len(devices)) + 1) for d in devices]
                items += batch
                load = BackgroundLoad(broker_port, batch, rate=rate)
                time.sleep(pause * 0.6)
                mid_load += not load.done or count(conninfo, "envelopes") < len(items)
                victim = rng.choice(["ingest-a", "ingest-b", "sequencer", "sequencer"])
                if victim == "sequencer":
                    proc = sequencers.pop(rng.randrange(len(sequencers)))
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    sequencers.append(_sequencer(conninfo, key, ledger, seq_log))
                else:
                    running.kill(victim)
                    running.start(victim)
                result.attempts += 1
                load.join()
            result.details["kills_while_loading"] = mid_load
            result.check(mid_load == result.attempts, f"only {mid_load} of {result.attempts} kills were mid-load")
            settle(lambda: count(conninfo, "envelopes") >= len(items), 60)
        finally:
            for proc in sequencers:
                proc.kill()
                proc.wait()
        audit(result, conninfo, items)
        subprocess.run(_sequencer_args(conninfo, key, ledger, "--once"), check=True, timeout=120, capture_output=True)
        try:
            size = check_log(conninfo, Verifier.from_vkey(vkey), LOG_ORIGIN)
        except AssertionError as e:
            result.check(False, f"log inconsistent: {e}")
            size = -1
        with psycopg.connect(conninfo) as conn:
            unlogged = conn.execute("SELECT count(*) FROM envelopes e WHERE NOT EXISTS "
                                    "(SELECT 1 FROM log_leaves l WHERE l.envelope_id = e.id)").fetchone()
            anchors = conn.execute("SELECT count(*), count(*) FILTER (WHERE status = 'confirmed') "
                                   "FROM anchors").fetchone()
        result.details.update(log_size=size, anchors=anchors)
        result.check(unlogged == (0,), f"{unlogged} committed envelopes in no leaf")
        result.check(size == result.details["stored"], f"log size {size} != stored envelopes")
        result.check(anchors is not None and anchors[0] >= 1 and anchors[0] == anchors[1],
                     f"anchors (all, confirmed): {anchors}")
    return result
