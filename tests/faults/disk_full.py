"""R9: the gateway's disk fills up. The agent's data directory is a real, small file system (a 3 MiB
tmpfs, mounted for the run: this needs root; elsewhere the scenario is skipped), the real agent runs as
a process, and its uplink (a relay to the broker, see `uplink.py`) is cut until the disk is full.

Expected (TARGETS R9): the outbox stays bounded by the disk, evicts oldest first (drop_oldest, the
default policy) and records every evicted range; the alarm is logged, shown by `mrv edge status` and
carried by the retained state message; no seq is reused; when the uplink is back everything not evicted
arrives, and each evicted range is an explicit `gap` chain event in ingest, not a silent hole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg

from edge_agent.errors import OutboxError
from edge_agent.keystore import FileKeyStore
from edge_agent.outbox import Outbox, SeqRange, seq_ranges
from ingest.registry import MeterRole, PlantKind, enroll_device
from managed_services.mosquitto import Mosquitto
from protocol import PublicKeyRecord
from tests.edge_agent.helpers import Collector
from tests.faults.edge_faults import REPO, _agent_config, agent_process
from tests.faults.record import FaultResult, settle, timed
from tests.faults.uplink import Uplink
from tests.ingest.helpers import count, running_worker

DISK = "3m"


class MountRefused(RuntimeError):
    pass


@contextlib.contextmanager
def small_disk(path: Path, size: str = DISK) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` for the block (raises MountRefused without the privilege)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise MountRefused(f"mount -t tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _outbox_state(path: Path) -> tuple[dict[str, int], int, dict[str, list[SeqRange]]]:
    """(next seq per device, envelopes evicted, evicted ranges per device), read while the agent runs."""
    try:
        with Outbox(path, create=False) as outbox:
            status = outbox.status()
            ranges = {d.device_id: outbox.evicted_ranges(d.device_id) for d in status.devices}
    except OutboxError:
        return {}, 0, {}
    return ({d.device_id: d.next_seq for d in status.devices},
            sum(r.count for rs in ranges.values() for r in rs), ranges)


def r9_disk_full(broker: Mosquitto, conninfo: str, workdir: Path, project_id: str, *,
                 evicted_at_least: int = 300) -> FaultResult:
    result = FaultResult("R9", f"gateway disk full ({DISK} file system, uplink cut)")
    device_ids = ["pv-1", "pv-2", "pv-3"]
    keys = FileKeyStore({d: workdir / f"{d}.key" for d in device_ids})
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for d in device_ids:
            enroll_device(conn, PublicKeyRecord(d, keys.generate(d).public_key), project_id=project_id,
                          role=MeterRole.MAIN, kind=PlantKind.PV, capacity_w=5_000_000,
                          valid_from=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    disk = workdir / "disk"
    uplink = Uplink(broker.port)
    config = _agent_config(workdir, uplink.port, project_id, device_ids, 0.002, f'data_dir = "{disk}/data"\n')
    config.write_text(config.read_text().replace('data_dir = "data"\n', "", 1))
    outbox_path = disk / "data" / "outbox.sqlite"
    log = workdir / "agent.log"
    with timed(result), small_disk(disk), running_worker(conninfo, broker.port, "ingest-r9"):
        agent = agent_process(config, log)
        try:
            result.check(settle(lambda: count(conninfo, "envelopes") >= 100, 30), "nothing arrived at first")
            uplink.cut()
            filled = settle(lambda: _outbox_state(outbox_path)[1] >= evicted_at_least, 120, interval=0.5)
            result.attempts = 1
            result.check(filled, "the disk never filled up (no evictions)")
            result.check(agent.poll() is None, f"the agent died on the full disk: {log.read_text()[-2000:]}")
            status = subprocess.run([sys.executable, "-m", "edge_agent", "status", "--config", str(config), "--json"],
                                    cwd=REPO, capture_output=True, text=True, timeout=60)
            shown = json.loads(status.stdout) if status.returncode == 0 else {}
            uplink.restore()
            # Drained into the broker: what ingest has not receipted yet stays kept (it may lag the agent).
            drained = settle(lambda: _queued(outbox_path) < 30, 120, interval=0.5)
            result.check(drained, "the backlog did not drain after the broker came back")
        finally:
            agent.send_signal(signal.SIGTERM)
            result.check(agent.wait(30) == 0, "the agent did not stop cleanly")
            uplink.close()
        next_seq, evicted, ranges = _outbox_state(outbox_path)
        with Outbox(outbox_path, create=False) as outbox:  # queued, or published and not yet receipted
            queued = {(d, s) for d in device_ids for s, _ in outbox.pending(d, -1, 1_000_000)} | {
                (d, s) for d in device_ids for s, _, _ in outbox.published_before(d, 2**63 - 1, 1_000_000)}
        watcher = Collector(broker.port, f"mrv/v1/{project_id}/+/state", f"watcher-{project_id}")
        settle(lambda: len(watcher.messages) >= 3, 10)
        watcher.close()
        everything = {(d, s) for d, n in next_seq.items() for s in range(n)}
        settle(lambda: count(conninfo, "envelopes") >= len(everything) - evicted - len(queued), 30)
        disk_free = _disk_check(result, log, shown, watcher.messages)
    _audit_gaps(result, conninfo, everything, queued, ranges)
    result.details.update(envelopes=len(everything), evicted=evicted, still_queued=len(queued),
                          evicted_ranges={d: [(r.first_seq, r.last_seq) for r in rs] for d, rs in ranges.items()},
                          disk=disk_free)
    return result


def _queued(path: Path) -> int:
    try:
        with Outbox(path, create=False) as outbox:
            return outbox.status().queued
    except OutboxError:
        return 1 << 30


def _disk_check(result: FaultResult, log: Path, shown: dict[str, object],
                states: list[tuple[str, bytes]]) -> str:
    text = log.read_text()
    result.check('"event":"outbox_evicted"' in text and '"full":"disk"' in text,
                 "no outbox_evicted warning naming the disk in the agent's log")
    result.check('"event":"append_failed"' not in text, "appends failed (SQLITE_FULL reached the agent)")
    alarms = shown.get("alarms", [])
    result.check(isinstance(alarms, list) and {a["code"] for a in alarms} == {"outbox_evicted"},
                 f"mrv edge status alarms: {alarms}")
    state_alarms = [json.loads(payload).get("alarms", []) for _, payload in states]
    result.check(len(state_alarms) == 3 and all(a and a[0]["code"] == "outbox_evicted" for a in state_alarms),
                 f"retained state messages carry no eviction alarm: {state_alarms}")
    return f"used {shown.get('used_bytes')} B of the queue when full"


def _audit_gaps(result: FaultResult, conninfo: str, everything: set[tuple[str, int]],
                queued: set[tuple[str, int]], ranges: dict[str, list[SeqRange]]) -> None:
    """lost: a seq neither stored, nor queued, nor recorded as evicted. Every evicted range that never
    reached ingest must be exactly a `gap` chain event there."""
    with psycopg.connect(conninfo) as conn:
        stored_rows = conn.execute("SELECT device_id, seq FROM envelopes").fetchall()
        events = conn.execute("SELECT device_id, kind, seq_from, seq_to FROM chain_events ORDER BY id").fetchall()
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()
    stored = {(d, int(s)) for d, s in stored_rows}
    evicted = {(r.device_id, s) for rs in ranges.values() for r in rs for s in range(r.first_seq, r.last_seq + 1)}
    result.lost = len(everything - stored - queued - evicted)
    result.duplicated = len(stored_rows) - len(stored)
    result.wrongly_accepted = len(stored - everything)
    undelivered = sorted(evicted - stored)
    expected_gaps = sorted((r.device_id, r.first_seq, r.last_seq) for r in seq_ranges(undelivered))
    gaps = sorted((d, int(a), int(b)) for d, kind, a, b in events if kind == "gap")
    result.check(gaps == expected_gaps, f"gap events {gaps[:5]} != evicted and undelivered {expected_gaps[:5]}")
    result.check(all(kind == "gap" for _, kind, _, _ in events), f"chain events other than gaps: {events[:5]}")
    result.check(quarantined == (0,), f"quarantined: {quarantined} (a reused seq is a replay conflict)")
    result.details["evicted_but_delivered"] = len(evicted & stored)
