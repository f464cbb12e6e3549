"""The edge agent and the broker under faults: R2 (broker restart mid-run), R2-ingest (the same through
ingest), its variants with the ingest worker away (R2-crash: the broker killed with SIGKILL while
messages it acknowledged wait queued; R2-shared: a graceful restart, then messages) and R5 (kill -9 of
the agent process while it writes). Mosquitto loses acknowledged messages in R2-ingest, R2-crash and
R2-shared; the agent recovers them because it keeps every envelope until ingest's receipt."""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg

from edge_agent.agent import Device, EdgeAgent
from edge_agent.clock import SimulatedClock
from edge_agent.config import AgentSettings, MqttConfig
from edge_agent.errors import OutboxError
from edge_agent.keystore import FileKeyStore
from edge_agent.outbox import Outbox
from ingest.decide import ChainEventKind, EnvelopeFlag
from ingest.registry import MeterRole, PlantKind, enroll_device
from managed_services.mosquitto import Mosquitto
from protocol import Ed25519Signer, PublicKeyRecord, parse_envelope
from tests.edge_agent.helpers import Collector, CounterSource, check_chains
from tests.faults.ingest_faults import workers
from tests.faults.record import FaultResult, settle, settle_count, timed
from tests.ingest.helpers import count, running_worker

REPO = Path(__file__).parents[2]


def distinct(payloads: list[bytes]) -> set[tuple[str, int]]:
    return {(p.device_id, p.seq) for p in (parse_envelope(raw).payload for raw in payloads)}


def _seq_conflicts(payloads: list[bytes]) -> int:
    """(device, seq) pairs seen with more than one distinct envelope: a reused seq."""
    variants = Counter((p.device_id, p.seq) for p in
                       (parse_envelope(raw).payload for raw in set(payloads)))
    return sum(n - 1 for n in variants.values())


def _chains(result: FaultResult, copies: list[bytes], keys: dict[str, bytes],
            next_seq: dict[str, int]) -> dict[str, list[int]]:
    try:
        return check_chains(copies, keys, next_seq)
    except AssertionError as e:
        result.check(False, f"chains: {e}")
        return {}


def r2_broker_restart(broker: Mosquitto, workdir: Path, project_id: str, *, reads: int = 400,
                      down_s: float = 1.5) -> FaultResult:
    """R2: the broker is stopped for `down_s` and started again (same port and persistence) while the
    agent samples 100 intervals per second for 3 devices; a persistent-session subscriber collects."""
    result = FaultResult("R2", "broker restart mid-run (agent outbox + persistent sessions)")
    devices = [Device(f"inv-{i}", project_id, CounterSource(limit=reads), Ed25519Signer.generate())
               for i in range(3)]
    collector = Collector(broker.port, f"mrv/v1/{project_id}/+/up", f"collector-{project_id}")
    settings = AgentSettings(data_dir=workdir / "data", interval_s=1, mqtt=MqttConfig(
        port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5))
    expected = {d.device_id: reads for d in devices}
    with timed(result), EdgeAgent(settings, devices, SimulatedClock(100)) as agent, \
            Outbox(settings.outbox_path) as view:
        thread = threading.Thread(target=agent.run)
        thread.start()
        try:
            result.check(settle(lambda: len(collector.messages) >= 60, 10), "envelopes did not flow")
            broker.stop()
            time.sleep(down_s)
            backlog = view.status().queued
            broker.start()
            result.attempts = 1
            settle(lambda: all(d.next_seq == reads and d.queued == 0 for d in view.status().devices), 30)
        finally:
            agent.stop()
            thread.join(10)
        settle(lambda: len(distinct(collector.payloads())) >= 3 * reads, 15)
        collector.close()
        payloads = collector.payloads()
        result.lost = 3 * reads - len(distinct(payloads))
        result.duplicated = _seq_conflicts(payloads)
        result.details.update(backlog_during_outage=backlog, received=len(payloads),
                              redelivered_copies=len(payloads) - len(set(payloads)))
        result.check(backlog > 100, f"the outage queued only {backlog}: too short to test anything")
        order = _chains(result, payloads, {d.device_id: d.signer.public_key for d in devices}, expected)
        result.check(all(seqs == sorted(seqs) for seqs in order.values()), "per-device order")
    return result


def r2_restart_through_ingest(broker: Mosquitto, conninfo: str, workdir: Path, project_id: str, *,
                              reads: int = 400, down_s: float = 1.5) -> FaultResult:
    """R2 end to end (R2-ingest): as R2, but the subscriber is the real ingest worker (shared
    subscription, manual acks after commit) writing to PostgreSQL, so the audit is the database's."""
    result = FaultResult("R2-ingest", "broker restart mid-run, agent -> broker -> ingest -> PostgreSQL")
    devices = _enrolled_devices(conninfo, project_id, 3, reads)
    settings = AgentSettings(data_dir=workdir / "data", interval_s=1, mqtt=MqttConfig(
        port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5, receipt_grace_s=1.0))
    clock = SimulatedClock(100, start_ms=int(time.time() * 1000) - 3_600_000)  # stays in the past
    with timed(result), running_worker(conninfo, broker.port, f"ingest-{project_id}"), \
            EdgeAgent(settings, devices, clock) as agent, Outbox(settings.outbox_path) as view:
        thread = threading.Thread(target=agent.run)
        thread.start()
        try:
            result.check(settle(lambda: count(conninfo, "envelopes") >= 60, 15), "envelopes did not flow")
            broker.stop()
            time.sleep(down_s)
            broker.start()
            result.attempts = 1
            # Empty once ingest's receipts confirmed every envelope, including any sent again.
            result.check(settle(lambda: all(d.next_seq == reads and d.kept == 0 for d in view.status().devices),
                                60), f"outbox not empty: {[(d.queued, d.published) for d in view.status().devices]}")
        finally:
            agent.stop()
            thread.join(10)
        settle_count(lambda: count(conninfo, "envelopes"), 3 * reads, 20)
    _audit_stored(result, conninfo, {d.device_id: reads for d in devices})
    return result


class GatedClock:
    """Simulated time that advances only by what the agent sleeps (`speed` times faster than real time)
    and stands still while `gate` is clear: the agent then samples nothing, while it publishes on."""

    def __init__(self, speed: float, start_ms: int) -> None:
        self.speed, self._now = speed, start_ms
        self.gate = threading.Event()
        self.gate.set()

    def now_ms(self) -> int:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.gate.wait()
        time.sleep(seconds / self.speed)
        self._now += round(seconds * 1000)


def _enrolled_devices(conninfo: str, project_id: str, n: int, reads: int | None = None) -> list[Device]:
    devices = [Device(f"inv-{i}", project_id, CounterSource(limit=reads), Ed25519Signer.generate())
               for i in range(n)]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for d in devices:
            enroll_device(conn, PublicKeyRecord(d.device_id, d.signer.public_key), project_id=project_id,
                          role=MeterRole.MAIN, kind=PlantKind.PV, capacity_w=5_000_000,
                          valid_from=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    return devices


def _audit_stored(result: FaultResult, conninfo: str, produced: dict[str, int]) -> None:
    """lost: a produced (device, seq) not stored; wrongly accepted: stored and never produced. Every
    chain must link (no chain break), and an envelope sent again fills its gap as a late fill."""
    with psycopg.connect(conninfo) as conn:
        stored = {(d, int(s)) for d, s in conn.execute("SELECT device_id, seq FROM envelopes").fetchall()}
        events = Counter(kind for (kind,) in conn.execute("SELECT kind FROM chain_events").fetchall())
        late = conn.execute("SELECT count(*) FROM envelopes WHERE flags & %s <> 0",
                            [int(EnvelopeFlag.LATE_FILL)]).fetchone()
        readings = conn.execute("SELECT count(*) FROM readings").fetchone()
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()
    everything = {(d, s) for d, n in produced.items() for s in range(n)}
    result.lost = len(everything - stored)
    result.wrongly_accepted = len(stored - everything)
    result.details.update(produced=len(everything), stored=len(stored), stored_as_late_fill=late[0] if late else 0,
                          chain_events=dict(events))
    result.check(len(everything) > 0, "nothing produced")
    result.check(events[ChainEventKind.CHAIN_BREAK.value] == 0, f"chain breaks: {dict(events)}")
    result.check(readings == (3 * len(stored),), f"{readings} readings for {len(stored)} envelopes of 3")
    result.check(quarantined == (0,), f"quarantined: {quarantined}")


def r2_offline_subscriber(broker: Mosquitto, conninfo: str, workdir: Path, project_id: str, *, crash: bool,
                          envelopes: int = 2000, devices: int = 4) -> FaultResult:
    """R2 with the ingest worker away: it connects once (its persistent session and shared subscription
    exist) and stops; then the edge agent publishes until the broker has acknowledged `envelopes`
    (PUBACK), which can now only wait in the broker for the worker, and pauses its sampling.

    crash=True (R2-crash): the broker is then killed with SIGKILL (inside autosave_interval) and
    restarted. crash=False (R2-shared): the broker was stopped gracefully and restarted before the
    agent published, so it has forgotten the worker's shared subscription. Then the worker comes back
    and the agent samples on: ingest's receipts of the new envelopes prove the earlier ones lost, and
    the agent, which kept them, sends them again. Passes when every envelope is stored and the
    outbox is empty."""
    result = FaultResult("R2-crash" if crash else "R2-shared",
                         "kill -9 of Mosquitto, acknowledged messages queued for ingest" if crash else
                         "graceful broker restart while ingest (shared subscription) is away")
    fleet = _enrolled_devices(conninfo, project_id, devices)
    settings = AgentSettings(data_dir=workdir / "data", interval_s=1, mqtt=MqttConfig(
        port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5, receipt_grace_s=1.0))
    clock = GatedClock(100, int(time.time() * 1000) - 7_200_000)  # stays in the past
    with timed(result), workers(conninfo, broker.port, workdir) as running:
        running.start("ingest-away")
        running.procs["ingest-away"].send_signal(signal.SIGTERM)
        running.procs.pop("ingest-away").wait(15)
        if not crash:
            broker.stop()
            broker.start()
        with EdgeAgent(settings, fleet, clock) as agent, Outbox(settings.outbox_path) as view:
            thread = threading.Thread(target=agent.run)
            thread.start()
            try:
                result.check(settle(lambda: view.status().published >= envelopes, 60),
                             f"the broker acknowledged only {view.status().published} of {envelopes}")
                clock.gate.clear()
                settle(lambda: view.status().queued == 0, 10)
                acknowledged = view.status().published
                if crash:
                    time.sleep(2)  # well inside autosave_interval, as a crash would be
                    broker.kill()
                    broker.start()
                result.attempts = 1
                running.start("ingest-away")
                before = sum(d.next_seq for d in view.status().devices)
                clock.gate.set()  # sample on: new envelopes, stored and receipted
                settle(lambda: sum(d.next_seq for d in view.status().devices) >= before + 50 * devices, 30)
                clock.gate.clear()
                result.check(settle(lambda: view.status().kept == 0, 90),
                             f"outbox not empty: {view.status().queued} queued, {view.status().published} "
                             "published and not receipted")
            finally:
                clock.gate.set()
                agent.stop()
                thread.join(10)
            produced = {d.device_id: d.next_seq for d in view.status().devices}
        settle_count(lambda: count(conninfo, "envelopes"), sum(produced.values()), 20)
        _audit_stored(result, conninfo, produced)
        result.details["acknowledged_while_ingest_away"] = acknowledged
    return result


def _agent_config(workdir: Path, broker_port: int, project_id: str, device_ids: list[str], interval_s: float,
                  extra: str = "") -> Path:
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)).isoformat(timespec="seconds")
    config = workdir / "edge.toml"
    config.write_text(f'data_dir = "data"\ninterval_s = {interval_s}\n{extra}[mqtt]\nport = {broker_port}\n'
                      "reconnect_min_s = 0.1\nreconnect_max_s = 0.5\n" + "".join(
        f'[[devices]]\ndevice_id = "{d}"\nproject_id = "{project_id}"\nkey_file = "{d}.key"\n'
        f'[devices.source]\ntype = "simulated"\nkind = "pv"\nseed = {i}\nstart = {start}\nstep_s = 1\n'
        for i, d in enumerate(device_ids)))
    return config


def agent_process(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`python -m edge_agent run` as a real process, its log appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
                                cwd=REPO, stdout=out, stderr=out)


def r5_agent_kills(broker: Mosquitto, workdir: Path, project_id: str, *, kills: int = 20) -> FaultResult:
    """R5: `python -m edge_agent run` is killed with SIGKILL `kills` times while it samples 50 intervals
    per second; afterwards received ∪ outbox holds every seq exactly once per device, the outbox passes
    SQLite's integrity check, and the retained state says offline (the last will)."""
    result = FaultResult("R5", f"kill -9 of the edge agent while it writes, {kills} times")
    device_ids = ["pv-1", "pv-2", "pv-3"]
    keys = {d: FileKeyStore({d: workdir / f"{d}.key"}).generate(d).public_key for d in device_ids}
    config = _agent_config(workdir, broker.port, project_id, device_ids, 0.02)
    outbox_path = workdir / "data" / "outbox.sqlite"
    collector = Collector(broker.port, f"mrv/v1/{project_id}/+/up", f"collector-{project_id}")
    log = workdir / "agent.log"
    rng = random.Random(5)

    def appended() -> int:
        try:
            with Outbox(outbox_path, create=False) as outbox:
                return sum(d.next_seq for d in outbox.status().devices)
        except OutboxError:  # not created yet, or created but its schema not yet committed
            return 0

    with timed(result):
        for kill in range(kills):
            before = appended()
            agent = agent_process(config, log)
            try:
                if not result.check(settle(lambda before=before: appended() >= before + 3, 20),
                                    f"run {kill} did not append"):
                    break
                time.sleep(rng.uniform(0, 0.15))
            finally:
                agent.send_signal(signal.SIGKILL)
                result.check(agent.wait(10) == -signal.SIGKILL, f"run {kill} had exited by itself")
            result.attempts += 1
        with sqlite3.connect(outbox_path) as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        result.check(integrity == "ok", f"outbox integrity: {integrity}")
        with Outbox(outbox_path, create=False) as outbox:
            next_seq = {d.device_id: d.next_seq for d in outbox.status().devices}
            queued = [raw for d in device_ids for _, raw in outbox.pending(d, -1, 1_000_000)]
        everything = {(d, s) for d, n in next_seq.items() for s in range(n)}
        settle(lambda: distinct(collector.payloads() + queued) >= everything, 15)
        collector.close()
        seen = collector.payloads() + queued
        result.lost = len(everything - distinct(seen))
        result.duplicated = _seq_conflicts(seen)
        result.details.update(envelopes=len(everything), received=len(collector.payloads()),
                              still_queued=len(queued))
        _chains(result, seen, keys, next_seq)
        result.check(len(everything) > 60, f"only {len(everything)} envelopes written")
        watcher = Collector(broker.port, f"mrv/v1/{project_id}/+/state", f"watcher-{project_id}")
        settle(lambda: len(watcher.messages) >= 3, 10)
        watcher.close()
        states = {json.loads(payload)["status"] for _, payload in watcher.messages}
        result.check(states == {"offline"}, f"retained states after the kills: {states}")
    return result
