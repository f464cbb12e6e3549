"""P1: end-to-end ingest against raw MQTT transport, and P2: signature verification throughput.

P1. Pre-signed envelopes (10 readings each, round-robin over the devices) are published at full
speed by load-generator processes (paho, QoS 1) through a project-managed Mosquitto.

* baseline: the same payloads through the same broker to a paho subscriber process (MQTT 5, the
  shared subscription, QoS 1) that discards them; rate = messages / (last received - first published);
* ingest: the same payloads to K `mrv ingest run` workers (manual acks after commit) writing to a
  project-managed PostgreSQL; rate = envelopes / (last commit - first published), latency per
  envelope = commit time (`envelopes.stored_at`) - its publish time; then lost and duplicated;
* `--backlog`: the workers are stopped (SIGSTOP) while the whole load is published and timed from
  their wake-up to the last commit: the ingest path's capacity with no load generator on its cores.

P2. `verify_parsed` (the ingest path's signature check, libsodium) in one process per core, against
`openssl speed ed25519` verify/s on one core times the cores.

    python bench/ingest.py                                # 50,000 envelopes, 1 worker
    python bench/ingest.py --envelopes 10000 --workers 2 --verify-processes 0
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# Run as `python bench/ingest.py`, this directory heads sys.path and this file would shadow the
# `ingest` package: drop it before importing the project.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import paho.mqtt.client as mqtt  # noqa: E402
import psycopg  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402

from ingest.migrate import migrate  # noqa: E402
from ingest.registry import MeterRole, PlantKind, enroll_device  # noqa: E402
from managed_services.mosquitto import Mosquitto  # noqa: E402
from managed_services.postgres import Postgres  # noqa: E402
from protocol import (  # noqa: E402
    GENESIS_PREV,
    SHARED_UP_SUBSCRIPTION,
    Ed25519Signer,
    Metric,
    Payload,
    PublicKeyRecord,
    Reading,
    envelope_hash,
    parse_envelope,
    sign_envelope,
    up_topic,
    verify_parsed,
)

P1_TARGET = 0.8
P2_TARGET = 0.9
RESULT = Path(__file__).parent / "results" / "ingest.json"
PROJECT = "bench"
READINGS = (Metric.ENERGY_EXPORT_WH, Metric.ENERGY_IMPORT_WH, Metric.ACTIVE_POWER_W, Metric.IRRADIANCE_W_M2,
            Metric.AMBIENT_TEMPERATURE_C, Metric.MODULE_TEMPERATURE_C, Metric.FREQUENCY_HZ,
            Metric.WIND_SPEED_M_S, Metric.ACTIVE_POWER_W, Metric.IRRADIANCE_W_M2)

Item = tuple[str, bytes, str, int]  # topic, envelope, device id, seq


# -- load generator and discarding subscriber (child processes) ------------------------------------------
def _publisher(port: int, items_file: Path, index: int, count: int, times_file: Path, rate: float) -> int:
    with items_file.open("rb") as f:
        items: list[Item] = pickle.load(f)[index::count]  # noqa: S301 (our own file)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-load-{index}")
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    acked = threading.Semaphore(0)
    client.on_publish = lambda *_: acked.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    times = []
    start = time.monotonic()
    for i, (topic, raw, _, _) in enumerate(items):
        if rate and i % 50 == 0 and (ahead := start + i / rate - time.monotonic()) > 0:
            time.sleep(ahead)
        times.append(time.time())
        client.publish(topic, raw, qos=1)
    for _ in items:
        acked.acquire()
    client.disconnect()
    client.loop_stop()
    times_file.write_bytes(pickle.dumps([(d, s, t) for (_, _, d, s), t in zip(items, times, strict=True)]))
    return 0


def _discard(port: int, expected: int) -> int:
    received = 0
    done = threading.Event()
    last = 0.0

    def on_message(*_: object) -> None:
        nonlocal received, last
        received += 1
        if received == expected:
            last = time.time()
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-discard",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(SHARED_UP_SUBSCRIPTION, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(0.5)
    print("ready", flush=True)
    done.wait()
    print(json.dumps({"received": received, "last": last}), flush=True)
    sys.stdin.readline()  # stay alive until the parent has read our CPU time
    client.disconnect()
    client.loop_stop()
    return 0


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(*roots: int) -> float:
    """CPU seconds of process trees: live processes' own time plus what their reaped children used.
    The machine is shared, so CPU spent per envelope says more than wall-clock rates alone."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            used[int(entry.name)] = sum(int(f) for f in fields[11:15]) / _TICK  # utime stime cutime cstime
    tree = set(roots)
    while new := {pid for pid, parent in parents.items() if parent in tree} - tree:
        tree |= new
    return sum(used.get(pid, 0.0) for pid in tree)


def _machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine, all cores (/proc/stat: user nice system irq softirq)."""
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in
                                                       Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / _TICK


def _reaped_children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def _publish_all(port: int, items_file: Path, publishers: int, rate: float,
                 work: Path) -> list[tuple[str, int, float]]:
    """Start the load generators, release them together, wait; returns (device, seq, publish time)."""
    times_files = [work / f"times-{i}.pickle" for i in range(publishers)]
    procs = [_child("--role", "publish", "--port", str(port), "--items", str(items_file), "--index", str(i),
                    "--count", str(publishers), "--times", str(times_files[i]), "--rate", str(rate / publishers))
             for i in range(publishers)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("a load generator failed")
    return [row for f in times_files for row in pickle.loads(f.read_bytes())]  # noqa: S301


# -- the runs -----------------------------------------------------------------------------------------------
def presign(n: int, devices: int) -> tuple[list[Item], list[PublicKeyRecord]]:
    signers = [Ed25519Signer.generate() for _ in range(devices)]
    ids = [f"meter-{i:05d}" for i in range(devices)]
    prev = [GENESIS_PREV] * devices
    items: list[Item] = []
    now = time.time_ns() // 1_000_000
    for i in range(n):
        d, seq = i % devices, i // devices
        t = now + i // 10
        readings = tuple(Reading(m, t, 1_000_000 + i if m <= 2 else 10.0 + (i % 97) / 4) for m in READINGS)
        raw = sign_envelope(Payload(ids[d], seq, prev[d], t, readings), signers[d])
        prev[d] = envelope_hash(raw)
        items.append((up_topic(PROJECT, ids[d]), raw, ids[d], seq))
    return items, [PublicKeyRecord(ids[d], signers[d].public_key) for d in range(devices)]


def run_baseline(broker: Mosquitto, items_file: Path, n: int, publishers: int, rate: float,
                 work: Path) -> dict[str, float]:
    sink = _child("--role", "discard", "--port", str(broker.port), "--expected", str(n))
    assert sink.stdout is not None and sink.stdin is not None
    assert sink.stdout.readline().strip() == "ready"
    assert broker.proc is not None
    cpu = -_cpu_s(broker.proc.pid, sink.pid)
    published = _publish_all(broker.port, items_file, publishers, rate, work)
    report = json.loads(sink.stdout.readline())
    cpu += _cpu_s(broker.proc.pid, sink.pid)
    sink.stdin.write("done\n")
    sink.stdin.flush()
    sink.wait()
    first = min(t for _, _, t in published)
    seconds = report["last"] - first
    return {"messages": report["received"], "seconds": round(seconds, 3), "msg_per_s": round(n / seconds, 1),
            "cpu_us_per_message": round(1e6 * cpu / n, 1)}


def run_ingest(broker: Mosquitto, pg: Postgres, items_file: Path, n: int, args: argparse.Namespace,
               work: Path, dbname: str | None = None) -> dict[str, object]:
    """`args` gives workers, verify_processes, publishers and rate; `dbname` an empty, migrated database
    with the devices enrolled (default: the cluster's own)."""
    env = dict(os.environ, MRV_INGEST__BROKER__HOST="127.0.0.1", MRV_INGEST__BROKER__PORT=str(broker.port),
               MRV_INGEST__DATABASE__CONNINFO=pg.conninfo(dbname), MRV_INGEST__HTTP__PORT="0",
               MRV_INGEST__LOG_LEVEL="INFO")
    if args.verify_processes is not None:
        env["MRV_INGEST__VERIFY__PROCESSES"] = str(args.verify_processes)
    workers, logs = [], [work / f"worker-{k}.log" for k in range(args.workers)]
    for k, log in enumerate(logs):
        with log.open("wb") as out:
            workers.append(subprocess.Popen([sys.executable, "-m", "mrv_cli", "ingest", "run", "--client-id",
                                             f"bench-ingest-{k}"], env=env, stdout=out, stderr=out))
    deadline = time.monotonic() + 30
    while not all("broker_connected" in log.read_text() and "database_connected" in log.read_text()
                  for log in logs):
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            raise RuntimeError("the workers did not start: " + logs[0].read_text()[-2000:])
        time.sleep(0.1)
    time.sleep(0.5)  # the subscription is in place
    assert broker.proc is not None and pg.proc is not None
    parts = {"broker": (broker.proc.pid,), "postgres": (pg.proc.pid,), "workers": tuple(w.pid for w in workers)}
    backlog = getattr(args, "backlog", False)

    def publish() -> tuple[list[tuple[str, int, float]], float]:
        load = _reaped_children_cpu_s()
        published = _publish_all(broker.port, items_file, args.publishers, args.rate, work)
        return published, _reaped_children_cpu_s() - load

    with psycopg.connect(pg.conninfo(dbname), autocommit=True) as conn:
        if backlog:  # the workers sleep while the broker takes the whole load; timed from their wake-up
            for w in workers:
                os.kill(w.pid, signal.SIGSTOP)
            published, _ = publish()
        wal_before = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
        size_before = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
        cpu = {name: -_cpu_s(*pids) for name, pids in parts.items()}
        machine = -_machine_cpu_s()
        started = time.time()
        window = -time.monotonic()
        if backlog:
            load = 0.0
            for w in workers:
                os.kill(w.pid, signal.SIGCONT)
        else:
            published, load = publish()
        deadline = time.monotonic() + 60 + n / 200
        while (stored := conn.execute("SELECT count(*) FROM envelopes").fetchone()[0]) < n:  # type: ignore[index]
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        cpu = {name: used + _cpu_s(*parts[name]) for name, used in cpu.items()}
        machine += _machine_cpu_s()
        window += time.monotonic()
        time.sleep(1.0)  # anything late (a duplicate) would show now
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
        rows = conn.execute("SELECT device_id, seq, extract(epoch FROM stored_at) FROM envelopes").fetchall()
        readings = conn.execute("SELECT count(*) FROM readings").fetchone()[0]  # type: ignore[index]
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]  # type: ignore[index]
        # Workers sharing the subscription may commit a device's envelopes out of order: gaps, late fills.
        events = dict(conn.execute("SELECT kind, count(*) FROM chain_events GROUP BY 1").fetchall())
        wal_bytes, size_bytes = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s), pg_database_size(current_database()) - %s",
            [wal_before, size_before]).fetchone()  # type: ignore[misc]
        if not rows:
            reasons = conn.execute("SELECT reason, count(*) FROM quarantine GROUP BY 1").fetchall()
            raise RuntimeError(f"nothing was stored; quarantined: {reasons}")
    sent = {(d, s): t for d, s, t in published}
    committed = {(d, s): float(t) for d, s, t in rows}
    latencies = sorted(committed[k] - sent[k] for k in committed.keys() & sent.keys())
    seconds = max(committed.values()) - (started if backlog else min(sent.values()))
    return {
        "envelopes": stored, "readings": readings, "quarantined": quarantined, "seconds": round(seconds, 3),
        "mode": "backlog" if backlog else "live",
        "envelopes_per_s": round(len(committed) / seconds, 1),
        "readings_per_s": round(readings / seconds, 1),
        # From a backlog, latency is the time spent queued: not a figure of the ingest path.
        "latency_p50_ms": None if backlog else round(1000 * statistics.median(latencies), 1),
        "latency_p99_ms": None if backlog else round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
        "cpu_us_per_envelope": round(1e6 * sum(cpu.values()) / max(len(committed), 1), 1),
        "cpu_us_per_envelope_by_process": {name: round(1e6 * used / max(len(committed), 1), 1)
                                           for name, used in cpu.items()},
        "cpu_us_per_reading_workers": round(1e6 * cpu["workers"] / max(readings, 1), 2),
        # Where the machine's CPU went in the measuring window (`window_s`: from the start of the load,
        # generators' start-up included, to the count reaching n): ours per process, the load
        # generators, and everything else (the neighbours on a shared machine).
        "window_s": round(window, 2),
        "cpu_s": {**{name: round(used, 2) for name, used in cpu.items()}, "load_generators": round(load, 2),
                  "other": round(machine - sum(cpu.values()) - load, 2), "machine": round(machine, 2)},
        "chain_events": events,
        # Disk sizing: WAL written and database growth (tables and indexes) per stored envelope.
        "wal_bytes_per_envelope": round(float(wal_bytes) / max(len(committed), 1)),
        "db_bytes_per_envelope": round(size_bytes / max(len(committed), 1)),
        "lost": len(sent.keys() - committed.keys()),
        "duplicated": len(rows) - len(committed) + max(0, readings - len(committed) * len(READINGS)),
    }


def _verify_share(items: list[tuple[bytes, bytes]]) -> tuple[int, float]:
    parsed = [(parse_envelope(raw), key) for raw, key in items]
    start = time.perf_counter()
    for envelope, key in parsed:
        verify_parsed(envelope, key)
    return len(parsed), time.perf_counter() - start


def _openssl_verify_per_s() -> float:
    out = subprocess.run(["openssl", "speed", "-seconds", "2", "ed25519"], capture_output=True, text=True,
                         check=True).stdout
    match = re.search(r"Ed25519\)\s+\S+\s+\S+\s+\S+\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError("cannot read openssl speed's ed25519 verify/s")
    return float(match[1])


def run_p2(items: list[Item], keys: dict[str, bytes], cores: int, repeat: int = 3) -> dict[str, float]:
    """Best of `repeat` interleaved runs of each side: the machine is shared, and a neighbour's load
    only ever slows a run down."""
    work = [(raw, keys[device]) for _, raw, device, _ in items[:20_000]]
    ours = baseline = 0.0
    with ProcessPoolExecutor(cores) as pool:
        for _ in range(repeat):
            results = list(pool.map(_verify_share, [work[i::cores] for i in range(cores)]))
            ours = max(ours, sum(n for n, _ in results) / max(s for _, s in results))
            baseline = max(baseline, _openssl_verify_per_s() * cores)
    return {"cores": cores, "verify_per_s": round(ours, 1), "openssl_verify_per_s": round(baseline, 1),
            "ratio": round(ours / baseline, 3), "target": P2_TARGET}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envelopes", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=1,
                        help="ingest worker processes (shared subscription)")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--publishers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--verify-processes", type=int, help="per worker; 0 verifies inline (default: cores)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="messages/s offered by all load generators together (default 0: as fast as they can); "
                             "below capacity the latencies mean something, at saturation they measure the backlog")
    parser.add_argument("--backlog", action="store_true",
                        help="the workers sleep (SIGSTOP) while the load is published, then drain it: "
                             "ingest capacity without the load generators on the same cores")
    parser.add_argument("--skip-p2", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, data) for a post-mortem")
    parser.add_argument("--role", choices=["publish", "discard"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--items", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--times", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "publish":
        return _publisher(args.port, args.items, args.index, args.count, args.times, args.rate)
    if args.role == "discard":
        return _discard(args.port, args.expected)

    work = Path(tempfile.mkdtemp(prefix="mrv-bench-"))
    work.chmod(0o755)  # the postgres service user keeps its cluster in here
    n = args.envelopes
    print(f"pre-signing {n} envelopes of {len(READINGS)} readings for {args.devices} devices ...", flush=True)
    signed_from = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    items, records = presign(n, args.devices)
    items_file = work / "items.pickle"
    items_file.write_bytes(pickle.dumps(items))
    try:
        with Postgres(work / "postgres") as pg, Mosquitto(work / "mosquitto") as broker:
            with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
                migrate(conn)
                for record in records:  # keys valid from before the envelopes were signed
                    enroll_device(conn, record, project_id=PROJECT, role=MeterRole.MAIN, kind=PlantKind.PV,
                                  capacity_w=1_000_000, valid_from=signed_from)
            print("baseline: publish to a discarding subscriber ...", flush=True)
            baseline = run_baseline(broker, items_file, n, args.publishers, args.rate, work)
            print(f"  {baseline['msg_per_s']} msg/s, CPU {baseline['cpu_us_per_message']} µs/message "
                  "(broker and subscriber)", flush=True)
            print(f"ingest: {args.workers} worker(s) ...", flush=True)
            ingest = run_ingest(broker, pg, items_file, n, args, work)
        ratio = ingest["envelopes_per_s"] / baseline["msg_per_s"]
        result: dict[str, object] = {
            "benchmark": "ingest_end_to_end", "envelopes": n, "readings_per_envelope": len(READINGS),
            "devices": args.devices, "workers": args.workers, "publishers": args.publishers,
            "verify_processes": args.verify_processes, "offered_rate": args.rate or "max",
            "baseline": baseline, "ingest": ingest,
            "ratio": round(ratio, 3), "target": P1_TARGET, "cpus": os.cpu_count(),
        }
        print(f"  {ingest['envelopes_per_s']} envelopes/s, {ingest['readings_per_s']} readings/s, "
              f"ratio {ratio:.2f} (target {P1_TARGET}), latency p50 {ingest['latency_p50_ms']} ms "
              f"p99 {ingest['latency_p99_ms']} ms, lost {ingest['lost']}, duplicated {ingest['duplicated']}; "
              f"CPU {ingest['cpu_us_per_envelope']} µs/envelope {ingest['cpu_us_per_envelope_by_process']} "
              f"(transport {baseline['cpu_us_per_message']})")
        if not args.skip_p2:
            cores = len(os.sched_getaffinity(0))
            keys = {r.device_id: r.public_key for r in records}
            p2 = run_p2(items, keys, cores)
            result["p2"] = p2
            print(f"P2: {p2['verify_per_s']} verify/s on {cores} cores, "
                  f"openssl {p2['openssl_verify_per_s']}, ratio {p2['ratio']} (target {P2_TARGET})")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results in {args.out}")
    finally:
        if args.keep:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
