"""Fault runs against the real broker: R2 (broker restart mid-run) and R5 (kill -9 of the agent)."""

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
from pathlib import Path

import pytest

from edge_agent.agent import Device, EdgeAgent
from edge_agent.clock import SimulatedClock
from edge_agent.config import AgentSettings, MqttConfig
from edge_agent.errors import OutboxError
from edge_agent.keystore import FileKeyStore
from edge_agent.outbox import Outbox
from managed_services.mosquitto import Mosquitto
from protocol import Ed25519Signer, parse_envelope
from tests.edge_agent.helpers import Collector, CounterSource, check_chains, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]


def distinct(payloads: list[bytes]) -> set[tuple[str, int]]:
    return {(p.device_id, p.seq) for p in (parse_envelope(raw).payload for raw in payloads)}


def test_a_broker_restart_mid_run_loses_nothing(mosquitto: Mosquitto, tmp_path: Path,
                                                project_id: str) -> None:
    """R2: the broker goes away for a while and comes back (same port, same persistence) while the
    agent samples 100 intervals per second; the subscriber's persistent session outlives it too."""
    broker, reads = mosquitto, 400
    devices = [Device(f"inv-{i}", project_id, CounterSource(limit=reads), Ed25519Signer.generate())
               for i in range(3)]
    collector = Collector(broker.port, f"mrv/v1/{project_id}/+/up", f"collector-{project_id}")
    settings = AgentSettings(data_dir=tmp_path / "data", interval_s=1, mqtt=MqttConfig(
        port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5))
    with EdgeAgent(settings, devices, SimulatedClock(100)) as agent, Outbox(settings.outbox_path) as view:
        thread = threading.Thread(target=agent.run)
        thread.start()
        try:
            wait_until(lambda: len(collector.messages) >= 60, 10, "envelopes to flow")
            broker.stop()
            time.sleep(1.5)
            backlog = view.status().queued
            broker.start()
            wait_until(lambda: all(d.next_seq == reads and d.queued == 0 for d in view.status().devices),
                       30, "every reading to be sampled and acknowledged")
        finally:
            agent.stop()
            thread.join(10)
    wait_until(lambda: len(distinct(collector.payloads())) == 3 * reads, 15, "the subscriber to catch up")
    collector.close()
    assert backlog > 100, "the outage should have queued a backlog"
    order = check_chains(collector.payloads(), {d.device_id: d.signer.public_key for d in devices},
                         {d.device_id: reads for d in devices})
    assert all(seqs == sorted(seqs) for seqs in order.values()), "per-device order"


def test_kill_9_twenty_times_reuses_no_seq_and_loses_nothing(mosquitto: Mosquitto, tmp_path: Path,
                                                            project_id: str) -> None:
    """R5: `python -m edge_agent run` is killed with SIGKILL 20 times while it samples 50 intervals
    per second; afterwards received ∪ outbox holds every seq exactly once per device."""
    device_ids = ["pv-1", "pv-2", "pv-3"]
    keys = {d: FileKeyStore({d: tmp_path / f"{d}.key"}).generate(d).public_key for d in device_ids}
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)).isoformat(timespec="seconds")
    config = tmp_path / "edge.toml"
    config.write_text(f'data_dir = "data"\ninterval_s = 0.02\n[mqtt]\nport = {mosquitto.port}\n'
                      "reconnect_min_s = 0.1\nreconnect_max_s = 0.5\n" + "".join(
        f'[[devices]]\ndevice_id = "{d}"\nproject_id = "{project_id}"\nkey_file = "{d}.key"\n'
        f'[devices.source]\ntype = "simulated"\nkind = "pv"\nseed = {i}\nstart = {start}\nstep_s = 1\n'
        for i, d in enumerate(device_ids)))
    outbox_path = tmp_path / "data" / "outbox.sqlite"
    collector = Collector(mosquitto.port, f"mrv/v1/{project_id}/+/up", f"collector-{project_id}")
    log = (tmp_path / "agent.log").open("ab")
    rng = random.Random(5)

    def appended() -> int:
        try:
            with Outbox(outbox_path, create=False) as outbox:
                return sum(d.next_seq for d in outbox.status().devices)
        except OutboxError:  # not created yet, or created but its schema not yet committed
            return 0

    for kill in range(20):
        before = appended()
        agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
                                 cwd=REPO, stdout=log, stderr=log)
        try:
            wait_until(lambda: appended() >= before + 3, 20, f"run {kill} to append")  # noqa: B023
            time.sleep(rng.uniform(0, 0.15))
        finally:
            agent.send_signal(signal.SIGKILL)
            assert agent.wait(10) == -signal.SIGKILL, (tmp_path / "agent.log").read_text()[-3000:]
    log.close()

    with sqlite3.connect(outbox_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Outbox(outbox_path, create=False) as outbox:
        next_seq = {d.device_id: d.next_seq for d in outbox.status().devices}
        queued = [raw for d in device_ids for _, raw in outbox.pending(d, -1, 1_000_000)]
    everything = {(d, s) for d, n in next_seq.items() for s in range(n)}
    wait_until(lambda: distinct(collector.payloads() + queued) == everything, 15,
               "the broker to deliver what it acknowledged")
    collector.close()
    check_chains(collector.payloads() + queued, keys, next_seq)
    assert sum(next_seq.values()) > 60

    watcher = Collector(mosquitto.port, f"mrv/v1/{project_id}/+/state", f"watcher-{project_id}")
    wait_until(lambda: len(watcher.messages) >= 3, 10, "the retained state messages")
    watcher.close()
    assert {json.loads(payload)["status"] for _, payload in watcher.messages} == {"offline"}  # the last will
