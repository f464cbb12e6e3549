"""P5: a monitoring report from the packed rollups against the same report from a full scan of raw readings.

One command: `python bench/report.py` (about 12 minutes on the 2-core build machine; `--days` scales it).

Method: a throw-away PostgreSQL (native partitions) holds a PV project of `--devices` 1 MW plants read
every minute for `--days` days. The target is 100 devices x 365 days (~52 M readings); the default keeps
all 100 devices and scales time down to 14 days (~8.2 M readings, 2 M envelopes), because every cost of
both paths (rows scanned, packed days decoded, envelope hashes digested, register steps checked) grows
linearly with the days read, so the ratio carries over to the project-year. Each device sends one
envelope per minute with four readings: the export and import registers, active power and irradiance.
Power follows the clear-sky sun (NOAA elevation) times a site-wide cloud factor and a per-device gain and
noise; registers are its running sum in whole Wh. Data is written with COPY (mrv_engine.seed), the
rollups are packed (refresh_rollups, timed: the full pack, then an incremental one after one more hour of
data), and the report over the monthly periods runs `--repeat` times from each source, best time kept
(the first run in a process pays page faults for its memory, up to twice the time on this VM).
The two documents must be equal apart from the source they name. Results go to bench/results/report.json.

    python bench/report.py                # 100 devices x 14 days
    python bench/report.py --days 7       # quicker
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run as `python bench/report.py`, this directory heads sys.path and bench/ingest.py would shadow the
# `ingest` package: drop it before importing the project.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import psycopg  # noqa: E402

from ingest.migrate import migrate  # noqa: E402
from managed_services.postgres import Postgres  # noqa: E402
from mrv_engine.cli import run_report  # noqa: E402
from mrv_engine.config import ProjectConfig, load_project_config  # noqa: E402
from mrv_engine.db import Source, refresh_rollups  # noqa: E402
from mrv_engine.plausibility import solar_elevation_deg  # noqa: E402
from mrv_engine.report import monthly_periods  # noqa: E402
from mrv_engine.seed import DeviceRecording, write  # noqa: E402
from mrv_engine.timespan import day_start_ms  # noqa: E402
from protocol.metrics import Metric  # noqa: E402

PROJECT = "bench-pv"
OFFSET = 480
FIRST_DAY = dt.date(2026, 3, 1)
LAT, LON = 37.5, 105.0
CAPACITY_W = 1_000_000
AUX_W = 2_000.0
RESULTS = Path(__file__).resolve().parent / "results" / "report.json"


def project(devices: int) -> dict[str, Any]:
    return {
        "project_id": PROJECT, "technology": "solar_pv",
        "nameplate_capacity_mw": {"value": devices * CAPACITY_W / 1e6, "source": "bench"},
        "utc_offset_minutes": OFFSET,
        "crediting_period": {"start": dt.date(2024, 1, 1), "end": dt.date(2030, 12, 31)},
        "methodology": {"id": "ACM0002"},
        "grid_ef": {"kind": "combined_margin", "ef_om": {"value": 0.8, "source": "bench"},
                    "ef_bm": {"value": 0.4, "source": "bench"}},
        "meters": [{"id": f"M{i:03d}", "role": "main", "device_id": f"pv-{i:03d}", "accuracy_class": "0.2S",
                    "capacity_kw": CAPACITY_W / 1e3, "irradiance_device": f"pv-{i:03d}"} for i in range(devices)],
        "claims": {"declared": ["CDM"]},
        "monitoring": {"interval_s": 60},
        "site": {"latitude": LAT, "longitude": LON},
    }


def recordings(devices: int, start_ms: int, minutes: int, seed: int = 5) -> list[DeviceRecording]:
    rng = np.random.default_rng(seed)
    t = start_ms + 60_000 * np.arange(minutes, dtype=np.int64)
    clear = np.clip(np.sin(np.radians(solar_elevation_deg(LAT, LON, t))), 0, None)
    clouds = np.clip(1 - 0.4 * np.abs(np.cumsum(rng.normal(0, 0.02, minutes))) % 1, 0.2, 1)
    irradiance = np.round(1000 * clear * clouds, 1)
    out = []
    for i in range(devices):
        gain = 0.82 * (1 + rng.normal(0, 0.02)) * (1 + rng.normal(0, 0.01, minutes))
        generation = CAPACITY_W * irradiance / 1000 * gain
        net = np.where(generation > AUX_W, generation - AUX_W, -AUX_W)
        export = np.concatenate(([0], np.cumsum(np.floor(np.clip(net, 0, None) / 60))))[:-1].astype(np.int64)
        import_ = np.concatenate(([0], np.cumsum(np.floor(np.clip(-net, 0, None) / 60))))[:-1].astype(np.int64)
        out.append(DeviceRecording(f"pv-{i:03d}", t, t + 2_000, {
            Metric.ENERGY_EXPORT_WH: 10_000_000 + export, Metric.ENERGY_IMPORT_WH: 50_000 + import_,
            Metric.ACTIVE_POWER_W: np.round(net, 1), Metric.IRRADIANCE_W_M2: irradiance}))
    return out


def _timed(conninfo: str, config: ProjectConfig, config_bytes: bytes, source: Source, days: int, repeat: int
           ) -> tuple[float, dict[str, Any]]:
    periods = monthly_periods(FIRST_DAY, FIRST_DAY + dt.timedelta(days=days - 1), OFFSET)
    best, doc = float("inf"), {}
    for _ in range(repeat):
        began = time.perf_counter()
        doc = run_report(conninfo, config, config_bytes, periods, source=source, refresh=False)
        best = min(best, time.perf_counter() - began)
    return best, doc


@dataclass(frozen=True)
class Loaded:
    conninfo: str
    readings: int
    load_s: float
    full_refresh_s: float
    packed_days: int
    incremental_refresh_s: float | None  # None: the last hour is left unpacked


@contextlib.contextmanager
def loaded_database(devices: int, days: int, *, pack_last_hour: bool = True) -> Iterator[Loaded]:
    """A throw-away PostgreSQL with the data set: all but its last hour written and packed, then the last
    hour written (and packed, unless `pack_last_hour` is False: its day is then read raw), analysed."""
    start = day_start_ms(FIRST_DAY, OFFSET) - 60 * 60_000  # an hour before the first period starts
    minutes = days * 1440 + 2 * 60  # and an hour after it ends
    work = Path(tempfile.mkdtemp(prefix="mrv-bench-report-"))
    work.chmod(0o755)  # the server runs as the postgres user
    try:
        with Postgres(work / "pg") as pg:
            pg.create_database("bench")
            conninfo = pg.conninfo("bench")
            with psycopg.connect(conninfo, autocommit=True) as conn:
                migrate(conn)
            data = recordings(devices, start, minutes)
            held = data[0].device_time_ms >= data[0].device_time_ms[-1] - 3_600_000  # the last hour, sent later
            began = time.perf_counter()
            with psycopg.connect(conninfo) as conn:
                readings = write(conn, PROJECT, [r.select(~held) for r in data])
            load_s = time.perf_counter() - began
            print(f"loaded {readings:,} readings of {devices} devices x {days} days in {load_s:.1f} s", flush=True)
            began = time.perf_counter()
            packed_days = refresh_rollups(conninfo)
            full_refresh_s = time.perf_counter() - began
            with psycopg.connect(conninfo) as conn:
                readings += write(conn, PROJECT, [r.select(held) for r in data])
            incremental_refresh_s = None
            if pack_last_hour:
                began = time.perf_counter()
                refresh_rollups(conninfo)
                incremental_refresh_s = time.perf_counter() - began
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            yield Loaded(conninfo, readings, load_s, full_refresh_s, packed_days, incremental_refresh_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    spec = project(args.devices)
    config = load_project_config(spec)
    config_bytes = json.dumps(spec, default=str, sort_keys=True).encode()
    with loaded_database(args.devices, args.days) as loaded:
        conninfo, readings = loaded.conninfo, loaded.readings
        load_s, full_refresh_s = loaded.load_s, loaded.full_refresh_s
        incremental_refresh_s = loaded.incremental_refresh_s or 0.0
        print(f"rollups: full pack {full_refresh_s:.1f} s ({loaded.packed_days} device-days), "
              f"incremental after one more hour {incremental_refresh_s:.2f} s", flush=True)
        scan_s, scan = _timed(conninfo, config, config_bytes, "scan", args.days, args.repeat)
        rollup_s, rollup = _timed(conninfo, config, config_bytes, "rollup", args.days, args.repeat)
    equal = {**scan, "source": None} == {**rollup, "source": None}
    result = {
        "target": "P5", "devices": args.devices, "days": args.days, "readings": readings,
        "load_s": round(load_s, 2), "full_refresh_s": round(full_refresh_s, 2),
        "incremental_refresh_s": round(incremental_refresh_s, 3),
        "scan_report_s": round(scan_s, 3), "rollup_report_s": round(rollup_s, 3),
        "speedup": round(scan_s / rollup_s, 2), "target_speedup": 20, "equal": equal,
        "net_generation_wh": rollup["totals"]["net_wh"], "periods": len(rollup["periods"]),
        "flags": rollup["totals"]["flags"],
    }
    print(f"report via full scan {scan_s:.2f} s, via rollups {rollup_s:.2f} s: {result['speedup']}x "
          f"(target >= 20x); numbers {'EQUAL' if equal else 'DIFFERENT'} "
          f"(net generation {result['net_generation_wh']:,} Wh)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
