"""R4: the gateway is offline for 24 h of simulated time, then back.

The same deterministic fleet (two simulated PV plants presented as metered, fixed keys) runs twice
through the real edge agent, broker, ingest worker and PostgreSQL, once with the gateway's uplink cut
(a relay between agent and broker, `uplink.py`) for exactly 24 h of simulated time and once without.
Simulated time comes from `StepClock`, which advances only when the agent sleeps, so both runs read
the meters at the same instants and sign byte-identical envelopes. Then: nothing lost, order and
hash chains intact in the database (no chain events, each device's chain links), the two databases
hold the same envelopes, and the monitoring report's code path (`mrv_engine.cli.assess_periods`)
gives the same net generation, to the Wh, and the same data completeness; its notes name the delivery
gap of each device in the outage run and none in the baseline (ingest stamps arrivals with the simulated
clock, so lateness is measured in simulated time).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from demo.up import AsMeteredSource, project_toml
from edge_agent.agent import Device, EdgeAgent
from edge_agent.config import AgentSettings, MqttConfig
from edge_agent.sources.simulated import SimulatedSource
from ingest.registry import MeterRole, PlantKind, enroll_device
from managed_services.mosquitto import Mosquitto
from mrv_engine.cli import assess_periods
from mrv_engine.config import load_project_config
from mrv_engine.report import build_report
from mrv_engine.timespan import Span
from protocol import Ed25519Signer, PublicKeyRecord, envelope_hash
from simulators.plant import PlantConfig
from simulators.plant import PlantKind as SimKind
from tests.faults.record import FaultResult, settle, timed
from tests.faults.uplink import Uplink
from tests.ingest.helpers import count, running_worker

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
PROJECT = "r4-solar"
DEVICES = ("pv-r4-1", "pv-r4-2")
CAPACITY_W = 2_000_000


class StepClock:
    """Simulated time that advances only by what `sleep` is asked for (then sleeps 1/speed of it for
    real), so readings fall on exactly the same instants in every run. `at` runs callbacks when time
    first reaches their instant; time stops at `stop_ms` (sleep then only waits)."""

    def __init__(self, start_ms: int, stop_ms: int, speed: float, at: dict[int, Callable[[], None]]) -> None:
        self._now, self.stop_ms, self.speed = start_ms, stop_ms, speed
        self._at = sorted(at.items())
        self._owed_s = 0.0  # real time owed: slept in whole milliseconds (shorter sleeps cost far more)

    def now_ms(self) -> int:
        return self._now

    def sleep(self, seconds: float) -> None:
        target = self._now + round(seconds * 1000)
        if target > self.stop_ms:
            time.sleep(0.05)
            return
        while self._at and self._at[0][0] <= target:
            self._now = self._at[0][0]
            self._at.pop(0)[1]()
        self._owed_s += seconds / self.speed
        if self._owed_s >= 0.001:
            time.sleep(self._owed_s)
            self._owed_s = 0.0
        self._now = target


@dataclass
class Run:
    produced: int
    stored: int
    duplicated: int
    hashes: set[bytes]
    chain_problems: list[str]
    delivered_late: int  # envelopes read during the outage that arrived after the uplink was back
    net_wh: int
    export_wh: int
    import_wh: int
    completeness: float
    notes: list[str]


def _devices(start_ms: int) -> list[Device]:
    return [Device(device_id, PROJECT,
                   AsMeteredSource(SimulatedSource(PlantConfig(SimKind.PV, 40 + i, capacity_w=CAPACITY_W),
                                                   origin_ms=start_ms)),
                   Ed25519Signer(hashlib.sha256(device_id.encode()).digest()))
            for i, device_id in enumerate(DEVICES)]


def _run(broker: Mosquitto, conninfo: str, data_dir: Path, start_ms: int, outage: tuple[int, int] | None,
         period: Span) -> Run:
    devices = _devices(start_ms)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for d in devices:
            enroll_device(conn, PublicKeyRecord(d.device_id, d.signer.public_key), project_id=PROJECT,
                          role=MeterRole.MAIN, kind=PlantKind.PV, capacity_w=CAPACITY_W,
                          valid_from=dt.datetime.fromtimestamp((start_ms - DAY_MS) / 1000, dt.UTC))
    uplink = Uplink(broker.port)
    events: dict[int, Callable[[], None]] = {}
    if outage is not None:
        events = {outage[0]: uplink.cut, outage[1]: uplink.restore}
    clock = StepClock(start_ms, period.end_ms + HOUR_MS, 100_000, events)
    settings = AgentSettings(data_dir=data_dir, interval_s=60, log_level="WARNING", mqtt=MqttConfig(
        port=uplink.port, reconnect_min_s=0.1, reconnect_max_s=0.5))
    try:
        # ingest stamps arrivals with the simulated clock too: lateness is then measured in simulated time
        with running_worker(conninfo, broker.port, f"ingest-{data_dir.name}", clock_ms=clock.now_ms), \
                EdgeAgent(settings, devices, clock) as agent:
            thread = threading.Thread(target=agent.run, name=f"agent-{data_dir.name}")
            thread.start()
            try:
                settle(lambda: clock.now_ms() >= clock.stop_ms - 60_000, 600, interval=0.2)
                produced = sum(d.next_seq for d in agent.outbox.status().devices)
                settle(lambda: count(conninfo, "envelopes") >= produced, 120, interval=0.2)
            finally:
                agent.stop()
                thread.join(30)
            produced = sum(d.next_seq for d in agent.outbox.status().devices)
            settle(lambda: count(conninfo, "envelopes") >= produced, 30, interval=0.2)
    finally:
        uplink.close()
    return _inspect(conninfo, produced, outage, period)


def _inspect(conninfo: str, produced: int, outage: tuple[int, int] | None,
             period: Span) -> Run:
    problems = []
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT device_id, seq, hash, prev, raw, flags, id, "
                            "extract(epoch FROM received_at), (extract(epoch FROM device_time) * 1000)::int8 "
                            "FROM envelopes ORDER BY device_id, seq").fetchall()
        events = conn.execute("SELECT device_id, kind, seq_from, seq_to FROM chain_events").fetchall()
        heads = dict(conn.execute("SELECT device_id, last_seq FROM device_chain").fetchall())
    if events:
        problems.append(f"chain events: {events[:5]}")
    late = 0
    by_device: dict[str, list[tuple[int, bytes, bytes, bytes, int, int]]] = {}
    for device, seq, digest, prev, raw, flags, row_id, received_s, device_ms in rows:
        by_device.setdefault(device, []).append((int(seq), bytes(digest), bytes(prev), bytes(raw), int(flags),
                                                 int(row_id)))
        # arrivals are in simulated time (the worker's clock): delivered once the uplink was back
        if outage and outage[0] <= device_ms < outage[1] and received_s * 1000 >= outage[1]:
            late += 1
    for device, chain in by_device.items():
        if [c[0] for c in chain] != list(range(len(chain))) or heads.get(device) != len(chain) - 1:
            problems.append(f"{device}: seqs not 0..{len(chain) - 1} or head {heads.get(device)}")
        prev = bytes(32)
        for seq, digest, link, raw, _flags, _ in chain:
            if link != prev or envelope_hash(raw) != digest:
                problems.append(f"{device} seq {seq}: hash chain broken")
                break
            prev = digest
        if [c[5] for c in chain] != sorted(c[5] for c in chain):
            problems.append(f"{device}: stored out of seq order")
        flagged = [(c[0], c[4]) for c in chain if c[4] & 0b111]  # gap, chain break, late fill
        if flagged:
            problems.append(f"{device}: chain flags {flagged[:3]}")
    config = load_project_config(tomllib.loads(_project_toml()))
    reports, evidence = assess_periods(conninfo, config, [period])
    result = reports[0].result
    doc = build_report(config, _project_toml().encode(), reports, source="rollup", evidence=evidence)
    keys = {(d, c[0]) for d, chain in by_device.items() for c in chain}
    return Run(produced, len(keys), len(rows) - len(keys), {c[1] for chain in by_device.values() for c in chain},
               problems, late, result.net_generation_wh, result.export_wh, result.import_wh,
               float(result.completeness), [n for n in doc["notes"] if "delivery" in n])


def _project_toml() -> str:
    return project_toml(PROJECT, "pv", [(d, CAPACITY_W) for d in DEVICES])


def r4_gateway_outage(brokers: tuple[Mosquitto, Mosquitto], conninfos: tuple[str, str], workdir: Path,
                      *, outage_h: int = 24) -> FaultResult:
    result = FaultResult("R4", f"gateway offline {outage_h} h of simulated time, then back")
    day0 = (int(time.time() * 1000) // DAY_MS - 3) * DAY_MS
    start = day0 - HOUR_MS // 2
    outage = (day0 + HOUR_MS, day0 + (1 + outage_h) * HOUR_MS)
    period = Span(day0, day0 + (2 + outage_h) * HOUR_MS)
    outcome: dict[str, Run] = {}
    failures: list[BaseException] = []

    def run(name: str, broker: Mosquitto, conninfo: str, cut: tuple[int, int] | None, data: Path) -> None:
        try:
            outcome[name] = _run(broker, conninfo, data / name, start, cut, period)
        except BaseException as e:  # reported below
            failures.append(e)

    # The outboxes go to memory when there is a tmpfs (/dev/shm): 1,650 fsyncs per run are not what R4 tests.
    shm = Path("/dev/shm")
    with timed(result), tempfile.TemporaryDirectory(prefix="mrv-r4-", dir=shm if shm.is_dir() else workdir) as data:
        threads = [threading.Thread(target=run, args=("baseline", brokers[0], conninfos[0], None, Path(data))),
                   threading.Thread(target=run, args=("outage", brokers[1], conninfos[1], outage, Path(data)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise failures[0]
    base, cut = outcome["baseline"], outcome["outage"]
    result.attempts = 1
    result.lost = cut.produced - cut.stored
    result.duplicated = cut.duplicated
    result.wrongly_accepted = len(cut.hashes - base.hashes)
    for problem in cut.chain_problems + [f"baseline: {p}" for p in base.chain_problems]:
        result.check(False, problem)
    result.check(base.produced == cut.produced and base.hashes == cut.hashes,
                 f"the runs differ: {base.produced} vs {cut.produced} envelopes")
    result.check(cut.delivered_late > 0, "no envelope of the outage arrived after it: the uplink was not cut")
    result.check((cut.net_wh, cut.export_wh, cut.import_wh) == (base.net_wh, base.export_wh, base.import_wh),
                 f"MRV differs: net {cut.net_wh} vs {base.net_wh} Wh")
    result.check(cut.net_wh > 0, "no net generation credited: the comparison would prove nothing")
    result.check(cut.completeness == base.completeness == 1.0,
                 f"completeness {cut.completeness} (outage) vs {base.completeness} (baseline)")
    # each device's backlog is noted (its drain can hold back a few later envelopes too: a further note)
    result.check(all(any(f"from {d}:" in n for n in cut.notes) for d in DEVICES) and not base.notes,
                 f"the report should note the delivery gap of each device in the outage run only: "
                 f"{cut.notes} (outage) vs {base.notes} (baseline)")
    result.details.update(envelopes=cut.produced, read_during_outage_delivered_after=cut.delivered_late,
                          net_wh=cut.net_wh, baseline_net_wh=base.net_wh, export_wh=cut.export_wh,
                          import_wh=cut.import_wh, completeness=cut.completeness,
                          delivery_notes=len(cut.notes), baseline_delivery_notes=len(base.notes),
                          delivery_note=cut.notes[:1])
    return result
