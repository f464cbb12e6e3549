"""The console's project and device pages: counts from the packed rollups against counting every row.

One command: `python bench/console.py` (about 6 minutes on the 2-core build machine).

Method: the P5 data set of bench/report.py (`--devices` 1 MW PV plants, one envelope of four readings per
minute, `--days` days, written with COPY), the rollups packed, the last hour written after the pack so
that its day is read raw, as it is between two refreshes of a running system. Each side runs what a
project page and a device page need, `--repeat` times, best time kept:

* rollups: `queries.list_projects`, `list_devices` (envelopes and readings per device), `list_periods`
  (envelopes per month of the project clock), `get_device` (readings per metric, first and last);
* every row: the same numbers by the queries the console ran before (migration 0008), which count every
  envelope and reading.

The numbers must be equal. Results go to bench/results/console.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import psycopg  # noqa: E402

from mrv_engine.console import queries  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_report", Path(__file__).resolve().parent / "report.py")
assert _spec is not None and _spec.loader is not None
report = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = report  # its dataclass looks itself up there
_spec.loader.exec_module(report)

RESULTS = Path(__file__).resolve().parent / "results" / "console.json"
Pages = tuple[object, ...]


def with_rollups(conn: psycopg.Connection) -> Pages:
    devices = queries.list_devices(conn)
    device = queries.get_device(conn, devices[0].id)
    return ([(p.id, p.envelopes) for p in queries.list_projects(conn)],
            [(d.id, d.envelopes, d.readings, d.first_seq, d.last_seq) for d in devices],
            [(p.first_day, p.envelopes) for p in queries.list_periods(conn, report.PROJECT, report.OFFSET)],
            [(m.readings, m.first, m.last) for m in device.metrics])


def every_row(conn: psycopg.Connection) -> Pages:
    """The console's queries before migration 0008."""
    projects = conn.execute(
        "SELECT p.id, coalesce(sum(e.n), 0) FROM projects p LEFT JOIN devices d ON d.project_id = p.id "
        "LEFT JOIN (SELECT device_id, count(*) AS n, max(received_at) AS last_seen FROM envelopes "
        "           GROUP BY device_id) e ON e.device_id = d.id GROUP BY p.id ORDER BY p.id").fetchall()
    ids = [r[0] for r in conn.execute("SELECT id FROM devices ORDER BY project_id, id")]
    envelopes = {r[0]: r[1:] for r in conn.execute(
        "SELECT device_id, count(*), min(seq), max(seq), max(received_at), max(device_time) FROM envelopes "
        "WHERE device_id = ANY(%s) GROUP BY device_id", [ids])}
    readings: dict[str, int] = dict(conn.execute(
        "SELECT device_id, count(*) FROM readings WHERE device_id = ANY(%s) GROUP BY device_id", [ids]).fetchall())
    periods = conn.execute(
        "SELECT date_trunc('month', e.device_time AT TIME ZONE 'UTC' + make_interval(mins => %s))::date, count(*) "
        "FROM envelopes e JOIN devices d ON d.id = e.device_id WHERE d.project_id = %s GROUP BY 1 ORDER BY 1 DESC",
        [report.OFFSET, report.PROJECT]).fetchall()
    metrics = conn.execute("SELECT count(*), min(ts), max(ts) FROM readings WHERE device_id = %s "
                           "GROUP BY metric ORDER BY metric", [ids[0]]).fetchall()
    return ([(i, int(n)) for i, n in projects],
            [(i, envelopes[i][0], readings[i], envelopes[i][1], envelopes[i][2]) for i in ids],
            [(m, n) for m, n in periods], [tuple(m) for m in metrics])


def best_of(repeat: int, conninfo: str, pages: Callable[[psycopg.Connection], Pages]) -> tuple[float, Pages]:
    best, result = float("inf"), Pages()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for _ in range(repeat):
            began = time.perf_counter()
            result = pages(conn)
            best = min(best, time.perf_counter() - began)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with report.loaded_database(args.devices, args.days, pack_last_hour=False) as loaded:
        readings = loaded.readings
        rows_s, rows = best_of(args.repeat, loaded.conninfo, every_row)
        rollup_s, rollup = best_of(args.repeat, loaded.conninfo, with_rollups)
    equal = rows == rollup
    result = {"devices": args.devices, "days": args.days, "readings": readings, "every_row_s": round(rows_s, 3),
              "rollups_s": round(rollup_s, 3), "speedup": round(rows_s / rollup_s, 1), "equal": equal}
    print(f"project and device pages: counting every row {rows_s:.2f} s, from the rollups {rollup_s:.3f} s: "
          f"{result['speedup']}x; numbers {'EQUAL' if equal else 'DIFFERENT'}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
