"""P1 and P6 as the fleet grows, and P7: one versus two ingest workers on the shared subscription.

For each device count (default 100, 1,000 and 10,000; every device its own Ed25519 key and hash
chain, pre-signed envelopes of 10 readings each):

* enrolment: `enroll_device` for every device into a template database, then the broker's password
  and ACL files rendered from the registry, and a Mosquitto started with them (time to accept TCP);
* P1: bench/ingest.py's baseline (same payloads to a discarding subscriber) and its end-to-end ingest
  run with one worker, each on a fresh broker, the ingest into a fresh copy of the template database;
  per point envelopes/s, readings/s, worker CPU µs per reading, lost, duplicated, the ratio;
* P6: bench/edge.py's live phase (read, sign, persist, publish on one pinned core) in its own process,
  so that peak RSS is the agent's at that fleet size.

P7 at one device count (default 1,000): the same pre-signed load drained by 1 and then by 2
`mrv ingest run` workers on the shared subscription `$share/ingest/...`, alternated `--p7-repeat`
times. The load is published while the workers are stopped (bench/ingest.py's backlog mode): the
Python load generators alone keep about a core busy, and on two cores they would decide the result.
Each run records CPU seconds per process (workers with their verification pools, PostgreSQL, the
broker, the load generators, everything else on the machine) over the run.

Results: bench/results/scale.json, scale_throughput.png, scale_cost_per_reading.png, scale_p7.png.

    python bench/scale.py                                     # the full sweep, about 8 minutes
    python bench/scale.py --devices 100 1000 --envelopes 5000 --skip-p6 --p7-repeat 1   # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
# Run as `python bench/scale.py`, this directory heads sys.path and bench/ingest.py would shadow the
# `ingest` package: drop it before importing the project.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import psycopg  # noqa: E402

from ingest.broker_auth import write_broker_files  # noqa: E402
from ingest.migrate import migrate  # noqa: E402
from ingest.registry import MeterRole, PlantKind, broker_accounts, enroll_device  # noqa: E402
from managed_services.mosquitto import Mosquitto  # noqa: E402
from managed_services.postgres import Postgres  # noqa: E402


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ingest_bench = _load("ingest")

RESULT = HERE / "results" / "scale.json"
DEVICES = (100, 1_000, 10_000)


def _envelopes_for(devices: int, envelopes: int) -> int:
    """At least two envelopes per device (an append after the chain's first), in whole rounds."""
    return max(envelopes, 2 * devices) // devices * devices


def enrol(pg: Postgres, template: str, records: list, work: Path) -> dict[str, float]:
    """Every device into `template` (migrated first), then the broker files and a broker using them."""
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{template}"')  # a fixed name of ours, not input
    signed_from = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)  # keys valid before the envelopes
    with psycopg.connect(pg.conninfo(template), autocommit=True) as conn:
        migrate(conn)
        start = time.perf_counter()
        for record in records:
            enroll_device(conn, record, project_id=ingest_bench.PROJECT, role=MeterRole.MAIN, kind=PlantKind.PV,
                          capacity_w=1_000_000, valid_from=signed_from)
        enrolled = time.perf_counter()
        auth = write_broker_files(broker_accounts(conn), work / f"broker-files-{template}")
        rendered = time.perf_counter()
    broker = Mosquitto(work / f"mosquitto-auth-{template}", auth=auth)
    start_broker = time.perf_counter()
    broker.start()
    broker_up = time.perf_counter()
    broker.stop()
    return {"enroll_s": round(enrolled - start, 2), "enroll_ms_per_device": round(1000 * (enrolled - start)
                                                                                 / len(records), 3),
            "broker_files_s": round(rendered - enrolled, 3),
            "acl_bytes": auth.acl_file.stat().st_size, "password_file_bytes": auth.password_file.stat().st_size,
            "broker_start_with_acl_s": round(broker_up - start_broker, 3)}


def _copy_database(pg: Postgres, template: str, name: str) -> str:
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')  # fixed names of ours
    return name


def _fresh_broker(work: Path, label: str) -> Mosquitto:
    """A broker per run: the workers' persistent sessions (and their shared subscription) must not
    outlive the run that made them."""
    return Mosquitto(work / f"mosquitto-{label}").start()


def _ingest_args(workers: int, publishers: int, backlog: bool) -> argparse.Namespace:
    return argparse.Namespace(workers=workers, verify_processes=None, publishers=publishers, rate=0.0,
                              backlog=backlog)


def p1_point(pg: Postgres, devices: int, envelopes: int, publishers: int, work: Path) -> tuple[dict, str, Path]:
    """Enrolment, baseline and one-worker ingest at one fleet size; returns the figures, the template
    database and the pre-signed items (for P7)."""
    n = _envelopes_for(devices, envelopes)
    print(f"[{devices} devices] pre-signing {n} envelopes ...", flush=True)
    start = time.perf_counter()
    items, records = ingest_bench.presign(n, devices)
    presign_s = time.perf_counter() - start
    items_file = work / f"items-{devices}.pickle"
    items_file.write_bytes(pickle.dumps(items))
    template = f"fleet_{devices}"
    enrolment = enrol(pg, template, records, work)
    print(f"  enrolled in {enrolment['enroll_s']} s, broker files {enrolment['broker_files_s']} s, "
          f"broker up with them in {enrolment['broker_start_with_acl_s']} s", flush=True)
    broker = _fresh_broker(work, f"baseline-{devices}")
    try:
        baseline = ingest_bench.run_baseline(broker, items_file, n, publishers, 0.0, work)
    finally:
        broker.stop()
    print(f"  baseline {baseline['msg_per_s']} msg/s", flush=True)
    ingest = _ingest_run(pg, template, f"p1_{devices}", items_file, n, 1, publishers, work, backlog=False)
    point = {"devices": devices, "envelopes": n, "envelopes_per_device": n // devices,
             "presign_s": round(presign_s, 2), "enrolment": enrolment, "baseline": baseline, "ingest": ingest,
             "ratio": round(ingest["envelopes_per_s"] / baseline["msg_per_s"], 3)}
    print(f"  ingest {ingest['envelopes_per_s']} envelopes/s ({ingest['readings_per_s']} readings/s), ratio "
          f"{point['ratio']}, worker CPU {ingest['cpu_us_per_reading_workers']} µs/reading, lost {ingest['lost']}, "
          f"duplicated {ingest['duplicated']}", flush=True)
    return point, template, items_file


def _ingest_run(pg: Postgres, template: str, label: str, items_file: Path, n: int, workers: int,
                publishers: int, work: Path, *, backlog: bool) -> dict:
    dbname = _copy_database(pg, template, label)
    broker = _fresh_broker(work, label)
    try:
        return ingest_bench.run_ingest(broker, pg, items_file, n, _ingest_args(workers, publishers, backlog),
                                       work, dbname=dbname)
    finally:
        broker.stop()


def p7(pg: Postgres, template: str, items_file: Path, n: int, publishers: int, repeat: int,
       work: Path) -> dict:
    """1 and 2 workers alternated `repeat` times on the same load; the median of each. The load is
    published while the workers sleep (bench/ingest.py's backlog mode), so the two Python load
    generators, which alone keep most of a core busy, do not compete with the workers."""
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for r in range(repeat):
        for workers in (1, 2):
            result = _ingest_run(pg, template, f"p7_{workers}w_{r}", items_file, n, workers, publishers, work,
                                 backlog=True)
            runs[workers].append(result)
            print(f"  P7 {workers} worker(s), run {r + 1}: {result['envelopes_per_s']} envelopes/s, "
                  f"CPU s {result['cpu_s']}", flush=True)
    return p7_summary({"envelopes": n, "repeat": repeat, "mode": "backlog",
                       "runs": {str(w): rs for w, rs in runs.items()}})


def p7_summary(result: dict) -> dict:
    """The ratio, and what survives a shared machine: envelopes per CPU second of the workers (equal
    for 1 and 2 workers means the second worker costs no overhead, so throughput follows the cores
    given), and the cores the neighbours left us (2 - their CPU seconds / the window)."""
    runs = result["runs"]
    median = {w: statistics.median(r["envelopes_per_s"] for r in rs) for w, rs in runs.items()}
    per_cpu = {w: statistics.median(r["envelopes"] / r["cpu_s"]["workers"] for r in rs) for w, rs in runs.items()}
    free = {w: statistics.median((os.cpu_count() or 2) - r["cpu_s"]["other"] / r["window_s"] for r in rs)
            for w, rs in runs.items()}
    return {**result, "median_envelopes_per_s": median, "ratio": round(median["2"] / median["1"], 3),
            "target": 1.6, "envelopes_per_worker_cpu_s": {w: round(v) for w, v in per_cpu.items()},
            "worker_efficiency_2_vs_1": round(per_cpu["2"] / per_cpu["1"], 3),
            "cores_left_by_neighbours": {w: round(v, 2) for w, v in free.items()}}


def p6_point(devices: int, envelopes: int, work: Path) -> dict:
    """bench/edge.py's live phase in its own process (it pins itself to one core; RSS is its own)."""
    n = _envelopes_for(devices, envelopes)
    out = work / f"edge-{devices}.json"
    print(f"[{devices} devices] P6 edge agent, {n} envelopes ...", flush=True)
    proc = subprocess.run([sys.executable, str(HERE / "edge.py"), "--envelopes", str(n), "--devices", str(devices),
                           "--skip-drain", "--out", str(out)], capture_output=True, text=True)
    if not out.exists():
        raise RuntimeError(f"bench/edge.py failed at {devices} devices: {proc.stdout[-1000:]}{proc.stderr[-2000:]}")
    result = json.loads(out.read_text())
    result["agent_cpu_us_per_envelope"] = round(1000 * result["agent_cpu_s_per_1000"], 1)
    print(f"  {result['envelopes_per_s']} envelopes/s, {result['agent_cpu_us_per_envelope']} µs CPU/envelope, "
          f"peak RSS {result['peak_rss_mb']} MB", flush=True)
    return result


def plot(result: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig: Any, ax: Any, path: Path) -> Path:
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    written = []
    p1 = result["p1"]
    devices = [p["devices"] for p in p1]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(devices, [p["baseline"]["msg_per_s"] for p in p1], "o--", label="P1 baseline: raw transport msg/s")
    ax.plot(devices, [p["ingest"]["envelopes_per_s"] for p in p1], "o-", label="P1 ingest, 1 worker: envelopes/s")
    if result.get("p6"):
        ax.plot([p["devices"] for p in result["p6"]], [p["envelopes_per_s"] for p in result["p6"]], "s-",
                label="P6 edge agent, 1 core: envelopes/s")
    ax.set(xscale="log", xlabel="simulated devices", ylabel="envelopes/s (10 readings each)",
           title="Throughput as the fleet grows")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    written.append(save(fig, ax, out_dir / "scale_throughput.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(devices, [p["ingest"]["cpu_us_per_reading_workers"] for p in p1], "o-",
            label="ingest worker (incl. verify pool)")
    ax.plot(devices, [p["ingest"]["cpu_us_per_envelope_by_process"]["postgres"] / 10 for p in p1], "o--",
            label="PostgreSQL")
    if result.get("p6"):
        ax.plot([p["devices"] for p in result["p6"]], [p["agent_cpu_us_per_envelope"] / 10 for p in result["p6"]],
                "s-", label="edge agent (read, sign, persist, publish)")
    ax.set(xscale="log", xlabel="simulated devices", ylabel="CPU µs per reading",
           title="Cost per reading as the fleet grows")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    written.append(save(fig, ax, out_dir / "scale_cost_per_reading.png"))

    if result.get("p7"):
        p7_result = result["p7"]
        parts = ["workers", "postgres", "broker", "load_generators", "other"]
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        labels, bottoms = [], [0.0, 0.0]
        for workers in ("1", "2"):
            labels.append(f"{workers} worker(s)\n{p7_result['median_envelopes_per_s'][workers]:.0f} env/s")
        for part in parts:
            # CPU cores busy on average over the run = CPU seconds / wall seconds.
            values = [statistics.median(r["cpu_s"][part] / r["window_s"] for r in p7_result["runs"][w])
                      for w in ("1", "2")]
            ax.bar(labels, values, bottom=bottoms, label=part.replace("_", " "))
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
        ax.axhline(os.cpu_count() or 2, color="black", linewidth=0.8, linestyle=":")
        ax.set(ylabel="cores busy (CPU s / wall s)",
               title=f"P7: 1 vs 2 workers draining the same backlog, ratio {p7_result['ratio']}")
        written.append(save(fig, ax, out_dir / "scale_p7.png"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, nargs="+", default=list(DEVICES))
    parser.add_argument("--envelopes", type=int, default=20_000,
                        help="P1 envelopes per point (at least 2 per device)")
    parser.add_argument("--edge-envelopes", type=int, default=20_000, help="P6 envelopes per point")
    parser.add_argument("--publishers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--p7-devices", type=int, default=1_000, help="the P1 point whose load P7 replays")
    parser.add_argument("--p7-repeat", type=int, default=2)
    parser.add_argument("--skip-p6", action="store_true")
    parser.add_argument("--skip-p7", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mrv-bench-scale-"))
    work.chmod(0o755)  # the postgres and mosquitto service users keep their files in here
    result: dict = {"benchmark": "scale", "cpus": os.cpu_count(), "readings_per_envelope": 10,
                    "load_average_before": os.getloadavg(), "p1": [], "p6": [], "p7": None}
    try:
        with Postgres(work / "postgres") as pg:
            for devices in sorted(args.devices):
                point, template, items_file = p1_point(pg, devices, args.envelopes, args.publishers, work)
                result["p1"].append(point)
                if devices == args.p7_devices and not args.skip_p7:
                    print(f"[{devices} devices] P7: 1 vs 2 workers ...", flush=True)
                    result["p7"] = p7(pg, template, items_file, point["envelopes"], args.publishers,
                                      args.p7_repeat, work)
                    print(f"  P7 ratio {result['p7']['ratio']} (target 1.6); envelopes per worker CPU second, "
                          f"2 workers vs 1: {result['p7']['worker_efficiency_2_vs_1']}; cores the neighbours left: "
                          f"{result['p7']['cores_left_by_neighbours']}", flush=True)
        if not args.skip_p6:
            result["p6"] = [p6_point(devices, args.edge_envelopes, work) for devices in sorted(args.devices)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_average_after"] = os.getloadavg()
    result["total_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for path in plot(result, args.out.parent):
        print(f"plot: {path}")
    print(f"results in {args.out} ({result['total_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
