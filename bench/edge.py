"""P6: the edge agent's read -> sign -> persist -> publish rate on one core, its peak RSS, and how
fast it drains a backlog after a broker outage.

The bench starts the project's Mosquitto and a counting QoS 1 subscriber (its own process), pins
itself (the agent) to one CPU and the broker and subscriber to another, then:

1. live: the agent samples N envelopes of 10 readings (N / devices intervals, as fast as it can)
   while its publish loop sends them; timed until the subscriber has counted all N;
2. drain: with the broker stopped, the agent fills its outbox with N more; the broker starts and
   a fresh publish loop drains the backlog; timed until the outbox is empty and all N arrived,
   and projected to P6's 864,000 envelopes (100 meters, 24 h at 10 s).

    python bench/edge.py                          # 20,000 envelopes from 100 devices
    python bench/edge.py --envelopes 100000 --devices 100
    python bench/edge.py --devices 10000 --skip-drain     # live phase only (bench/scale.py's sweep)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from edge_agent.agent import Device, EdgeAgent
from edge_agent.clock import SimulatedClock
from edge_agent.config import AgentSettings, MqttConfig
from edge_agent.outbox import Outbox
from edge_agent.publisher import Link, Publisher, PublishLoop, window_size
from managed_services.mosquitto import Mosquitto
from mrv_common.logs import configure_logging
from protocol import Ed25519Signer, Metric, Reading

RESULT = Path(__file__).parent / "results" / "edge.json"
PROJECT = "bench-edge"
INTERVAL_MS = 10_000
BACKLOG_24H = 864_000
TARGETS = {"envelopes_per_s": 2000.0, "peak_rss_mb": 80.0, "drain_864k_s": 300.0}


class BenchMeter:
    """A meter with two energy registers and eight instantaneous values: 10 readings a read."""

    def __init__(self) -> None:
        self.wh = 0

    def read(self, now_ms: int) -> list[Reading]:
        self.wh += 125
        instantaneous = [(Metric.ACTIVE_POWER_W, 45_000.5), (Metric.IRRADIANCE_W_M2, 812.4),
                         (Metric.AMBIENT_TEMPERATURE_C, 21.3), (Metric.MODULE_TEMPERATURE_C, 38.9),
                         (Metric.FREQUENCY_HZ, 50.01), (Metric.WIND_SPEED_M_S, 3.2),
                         (Metric.ACTIVE_POWER_W, 44_990.0), (Metric.IRRADIANCE_W_M2, 810.0)]
        registers = [Reading(Metric.ENERGY_EXPORT_WH, now_ms, self.wh),
                     Reading(Metric.ENERGY_IMPORT_WH, now_ms, 7)]
        return registers + [Reading(metric, now_ms, value) for metric, value in instantaneous]

    def close(self) -> None:
        pass


def count_messages(port: int, counter: Any, ready: Any) -> None:
    """Subscriber process: count every envelope (persistent session, QoS 1) into `counter`."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        counter.value += 1  # only this process writes it

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter", clean_session=False)
    client.reconnect_delay_set(1, 1)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"mrv/v1/{PROJECT}/+/up", qos=1)
    client.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_forever(retry_first_connection=True)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench/edge.py: timed out waiting for {what}")
        time.sleep(0.01)


def publish_in_thread(loop: PublishLoop) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), name="publish")
    thread.start()
    return thread, stop


def sample(agent: EdgeAgent, intervals: int, t_ms: int) -> int:
    for _ in range(intervals):
        t_ms += INTERVAL_MS
        agent.sample_once(t_ms)
    return t_ms


def run(envelopes: int, devices: int, workdir: Path, *, drain: bool = True) -> dict[str, Any]:
    intervals = max(1, envelopes // devices)
    envelopes = intervals * devices
    spawn = multiprocessing.get_context("spawn")
    counter, ready = spawn.Value("q", 0, lock=False), spawn.Event()
    broker = Mosquitto(workdir / "mosquitto").start()
    subscriber = spawn.Process(target=count_messages, args=(broker.port, counter, ready), daemon=True)
    subscriber.start()
    pinned = _pin(broker, subscriber)
    try:
        if not ready.wait(20):
            raise SystemExit("bench/edge.py: the subscriber could not subscribe")
        t_ms = 1_750_000_000_000
        clock = SimulatedClock(1, t_ms)
        mqtt = MqttConfig(port=broker.port, reconnect_min_s=0.05, reconnect_max_s=0.2)
        fleet = [Device(f"meter-{i:04d}", PROJECT, BenchMeter(), Ed25519Signer.generate())
                 for i in range(devices)]
        settings = AgentSettings(data_dir=workdir / "agent", interval_s=INTERVAL_MS / 1000, mqtt=mqtt)
        with EdgeAgent(settings, fleet, clock) as agent, Outbox(settings.outbox_path) as view:
            rss_idle = _rss_mb()
            thread, stop = publish_in_thread(agent.publish_loop)
            connect_s = time.perf_counter()
            wait_for(lambda: all(p.link is Link.CONNECTED for p in agent.publish_loop.publishers),
                     20 + devices / 100, "the devices to connect")
            connect_s = time.perf_counter() - connect_s
            cpu0, wall0 = time.process_time(), time.perf_counter()
            t_ms = sample(agent, intervals, t_ms)
            sampled_s = time.perf_counter() - wall0
            wait_for(lambda: counter.value >= envelopes and view.status().queued == 0, 120, "live delivery")
            live_s, live_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            stop.set()
            agent.publish_loop.wake()
            thread.join()
            result = {
                "envelopes": envelopes, "devices": devices, "readings_per_envelope": 10,
                "pinned_to_one_cpu": pinned, "envelopes_per_s": round(envelopes / live_s),
                "sample_persist_per_s": round(envelopes / sampled_s),
                "agent_cpu_s_per_1000": round(1000 * live_cpu / envelopes, 3), "rss_idle_mb": round(rss_idle, 1),
                "connect_all_s": round(connect_s, 2),
            }
            if not drain:
                result["peak_rss_mb"] = round(_rss_mb(), 1)
                return result

            broker.stop()
            wall0 = time.perf_counter()
            t_ms = sample(agent, intervals, t_ms)
            fill_s = time.perf_counter() - wall0
            size = view.status().used_bytes
            broker.start()
            _pin(broker, None)
            window = window_size(mqtt, devices)
            publishers = [Publisher(d.device_id, PROJECT, mqtt, password=None, window=window, clock=clock)
                          for d in fleet]
            before = counter.value
            wall0 = time.perf_counter()
            thread, stop = publish_in_thread(PublishLoop(publishers, settings.outbox_path, clock))
            wait_for(lambda: view.status().queued == 0 and counter.value - before >= envelopes, 600,
                     "the drain")
            drain_s = time.perf_counter() - wall0
            stop.set()
            thread.join()
        peak_rss = _rss_mb()
    finally:
        subscriber.kill()
        broker.kill()
    drain_rate = envelopes / drain_s
    return {
        **result, "persist_only_per_s": round(envelopes / fill_s),
        "outbox_bytes_per_envelope": round(size / envelopes),
        "drain_per_s": round(drain_rate), "drain_864k_s": round(BACKLOG_24H / drain_rate, 1),
        "peak_rss_mb": round(peak_rss, 1),
    }


def _pin(broker: Mosquitto, subscriber: Any) -> bool:
    """The agent on CPU 0, broker and subscriber on the rest, when there are at least two CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or broker.proc is None:
        return False
    os.sched_setaffinity(broker.proc.pid, set(cpus[1:]))
    if subscriber is not None:
        os.sched_setaffinity(subscriber.pid, set(cpus[1:]))
        os.sched_setaffinity(0, {cpus[0]})
    return True


def _rss_mb() -> float:
    """Peak RSS of this process so far. VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over
    fork and exec, so a process started by a big parent (bench/scale.py) would report the parent's."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024  # kB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envelopes", type=int, default=20_000, help="envelopes per phase (default 20,000)")
    parser.add_argument("--devices", type=int, default=100,
                        help="meters, one MQTT connection each (default 100)")
    parser.add_argument("--skip-drain", action="store_true", help="live phase only (bench/scale.py's sweep)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    # mosquitto drops root for its own user: its directory must be reachable (tempfile makes 0700).
    workdir = Path(tempfile.mkdtemp(prefix="mrv-bench-edge-"))
    workdir.chmod(0o755)
    try:
        result = run(args.envelopes, args.devices, workdir, drain=not args.skip_drain)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["targets"] = TARGETS
    result["pass"] = {name: result[name] <= limit if name != "envelopes_per_s" else result[name] >= limit
                      for name, limit in TARGETS.items() if name in result}
    rows = [
        ("read+sign+persist+publish, one core", f"{result['envelopes_per_s']:,} env/s", ">= 2,000 env/s"),
        ("  of which read+sign+persist", f"{result['sample_persist_per_s']:,} env/s", ""),
        ("  agent CPU per 1000 envelopes", f"{result['agent_cpu_s_per_1000']} s", ""),
        ("peak RSS of the agent", f"{result['peak_rss_mb']} MB", "<= 80 MB"),
    ]
    if "drain_per_s" in result:
        rows += [
            ("backlog drain", f"{result['drain_per_s']:,} env/s", ""),
            ("  projected for 864k envelopes", f"{result['drain_864k_s']} s", "<= 300 s"),
            ("outbox size per envelope", f"{result['outbox_bytes_per_envelope']} B", ""),
        ]
    phases = "1 phase (live)" if args.skip_drain else "2 phases"
    print(f"P6 edge agent: {result['envelopes']:,} envelopes x {phases}, {result['devices']} devices, "
          f"10 readings each, agent pinned to one CPU: {result['pinned_to_one_cpu']}")
    for name, value, target in rows:
        print(f"  {name:<38} {value:>14}   {target}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0 if all(result["pass"].values()) else 1

if __name__ == "__main__":
    sys.exit(main())
