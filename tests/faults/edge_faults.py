"""The edge agent and the broker under faults: R2 (broker restart mid-run), its variants with the
ingest worker away (R2-crash: the broker killed with SIGKILL while messages it acknowledged wait queued;
R2-shared: a graceful restart, then messages) and R5 (kill -9 of the agent process while it writes)."""

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
from ingest.registry import MeterRole, PlantKind, enroll_device
from managed_services.mosquitto import Mosquitto
from protocol import Ed25519Signer, PublicKeyRecord, parse_envelope
from tests.edge_agent.helpers import Collector, CounterSource, check_chains
from tests.faults.ingest_faults import audit, signed_load, workers
from tests.faults.record import FaultResult, settle, settle_count, timed
from tests.ingest.helpers import TestPublisher, count, running_worker

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
    devices = [Device(f"inv-{i}", project_id, CounterSource(limit=reads), Ed25519Signer.generate())
               for i in range(3)]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for d in devices:
            enroll_device(conn, PublicKeyRecord(d.device_id, d.signer.public_key), project_id=project_id,
                          role=MeterRole.MAIN, kind=PlantKind.PV, capacity_w=5_000_000,
                          valid_from=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    settings = AgentSettings(data_dir=workdir / "data", interval_s=1, mqtt=MqttConfig(
        port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5))
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
            settle(lambda: all(d.next_seq == reads and d.queued == 0 for d in view.status().devices), 30)
        finally:
            agent.stop()
            thread.join(10)
        stored = settle_count(lambda: count(conninfo, "envelopes"), 3 * reads, 20)
    with psycopg.connect(conninfo) as conn:
        gaps = conn.execute("SELECT device_id, seq_from, seq_to FROM chain_events WHERE kind = 'gap' "
                            "ORDER BY device_id, seq_from").fetchall()
    result.lost = 3 * reads - stored
    result.details["gap_events"] = [tuple(g) for g in gaps[:6]]
    if result.lost:
        result.details["why"] = ("the agent reconnected before the ingest worker: Mosquitto 2.0.11 had not restored "
                                 "the worker's shared subscription, so it acknowledged and dropped what came first")
    return result


def r2_offline_subscriber(broker: Mosquitto, conninfo: str, workdir: Path, project_id: str, *, crash: bool,
                          envelopes: int = 2000) -> FaultResult:
    """R2 with the ingest worker away: it connects once (its persistent session and shared subscription
    exist) and stops, then `envelopes` are published and acknowledged by the broker (PUBACK: a real
    gateway then deletes them from its outbox), so they can only wait in the broker for the worker.

    crash=True (R2-crash): published first, then the broker is killed with SIGKILL a moment later
    (inside autosave_interval) and restarted. crash=False (R2-shared): the broker is stopped gracefully
    and restarted first, then the envelopes are published. Then the worker comes back."""
    result = FaultResult("R2-crash" if crash else "R2-shared",
                         "kill -9 of Mosquitto, acknowledged messages queued for ingest" if crash else
                         "graceful broker restart while ingest (shared subscription) is away")
    with timed(result), workers(conninfo, broker.port, workdir) as running:
        items = signed_load(project_id, conninfo, 20, envelopes // 20)
        running.start("ingest-away")
        running.procs["ingest-away"].send_signal(signal.SIGTERM)
        running.procs.pop("ingest-away").wait(15)
        if not crash:
            broker.stop()
            broker.start()
        publisher = TestPublisher(broker.port, f"gateway-{project_id}")
        started = time.monotonic()
        publisher.publish(items)
        acknowledged_in = time.monotonic() - started
        publisher.close()
        if crash:
            time.sleep(2)  # well inside autosave_interval, as a crash would be
            broker.kill()
            broker.start()
        result.attempts = 1
        running.start("ingest-away")
        settle_count(lambda: count(conninfo, "envelopes"), len(items), 30)
        audit(result, conninfo, items)
        result.details["publish_acknowledged_msg_per_s"] = round(len(items) / acknowledged_in)
        if result.lost:
            result.details["why"] = (
                "Mosquitto 2.0 persists by snapshot (autosave_interval 60 s): what it acknowledged since the last "
                "snapshot and had not delivered dies with it" if crash else
                "Mosquitto 2.0.11 does not restore an offline persistent session's shared subscription after a "
                "restart: until the worker subscribes again, messages for $share/ingest/... go nowhere")
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
