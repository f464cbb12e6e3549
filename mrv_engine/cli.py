"""`mrv report`: monitoring reports of a project from the database.

    mrv report pv-demo --period 2026-01..2026-03 --config project.toml --out reports/2026q1
    mrv report pv-demo --from 2026-01-15 --to 2026-02-14 --config project.toml --out out/
    mrv report pv-demo --period 2026-01 --config project.toml --out out/ --log-vkey "$(cat log.vkey)"

With --log-vkey (the log's verifier key, as `mrv anchor keygen` printed it), report.bundle.json, the
evidence bundle of every envelope the report used, is written too, once a checkpoint covers them all.

PostgreSQL comes from --conninfo (no password on the command line) and the PG* environment variables.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import psycopg

from mrv_engine.assessment import assess_period
from mrv_engine.columns import EnvelopeHashes, distinct_sorted
from mrv_engine.config import ProjectConfig, load_project_config
from mrv_engine.db import SOURCES, LoadedPeriod, Source, connect_pair, load_period, refresh_rollups
from mrv_engine.errors import MrvError
from mrv_engine.evidence import Evidence, attach_checkpoint
from mrv_engine.report import (
    PeriodReport,
    arrival_gaps,
    build_report,
    check_ended,
    daily_export,
    month_range,
    monthly_periods,
    write_report,
)
from mrv_engine.timespan import Span
from mrv_engine.units import MS_PER_HOUR

Progress = Callable[[int, int, str], None]


def progress_bar(stream: TextIO) -> Progress:
    started = time.monotonic()

    def show(done: int, total: int, label: str) -> None:
        filled = round(24 * done / max(total, 1))
        stream.write(f"\r[{'#' * filled}{'.' * (24 - filled)}] {done}/{total} periods "
                     f"{time.monotonic() - started:6.1f} s {label:<24}")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show


def assess_periods(conninfo: str, config: ProjectConfig, periods: Sequence[Span], *, source: Source = "rollup",
                   refresh: bool = True, progress: Progress | None = None, log_vkey: str | None = None
                   ) -> tuple[list[PeriodReport], Evidence]:
    """Assess each period from the database and find the evidence of their envelopes (one snapshot for all)."""
    if refresh and source == "rollup":
        refresh_rollups(conninfo)
    reports: list[tuple[LoadedPeriod, PeriodReport]] = []
    union: EnvelopeHashes | None = None
    with connect_pair(conninfo) as (conn, helper):
        for i, period in enumerate(periods):
            if progress:
                progress(i, len(periods), f"period {i + 1}")
            loaded = load_period(conn, config, period, source=source, helper=helper,
                                 claims=config.claims_overlapping(period))
            if i == len(periods) - 1:  # the report's envelope set, merged on the other core meanwhile
                union = _union([p.envelope_hashes for _, p in reports] + [loaded.data.envelope_hashes])
            gap_ms = config.monitoring.gap_intervals * config.monitoring.interval_s * 1000
            reports.append((loaded, PeriodReport(assess_period(config, loaded.data),
                                                 daily_export(config, loaded.data), loaded.data.envelope_hashes,
                                                 arrival_gaps(loaded.data, max(gap_ms, MS_PER_HOUR)))))
        ids = (reports[0][0].envelope_ids if len(reports) == 1
               else distinct_sorted([loaded.envelope_ids for loaded, _ in reports]))
        evidence = dataclasses.replace(attach_checkpoint(conn, ids, log_vkey), envelope_hashes=union)
    if progress:
        progress(len(periods), len(periods), "done")
    return [r for _, r in reports], evidence


def _union(sets: Sequence[Sequence[str]]) -> EnvelopeHashes | None:
    """The periods' envelope hash sets merged in the background, when all come from the database."""
    known = [s for s in sets if isinstance(s, EnvelopeHashes)]
    return EnvelopeHashes.union(known, background=True) if len(known) == len(sets) else None


def run_report(conninfo: str, config: ProjectConfig, config_bytes: bytes, periods: Sequence[Span], *,
               source: Source = "rollup", refresh: bool = True, progress: Progress | None = None
               ) -> dict[str, Any]:
    """Assess each period from the database (one snapshot for all) and build the report document."""
    reports, evidence = assess_periods(conninfo, config, periods, source=source, refresh=refresh, progress=progress)
    return build_report(config, config_bytes, reports, source=source, evidence=evidence)


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", help="project id; must match the configuration's project_id")
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--period", help="months of the project clock: YYYY-MM or YYYY-MM..YYYY-MM")
    when.add_argument("--from", dest="first", type=_date, help="first day (YYYY-MM-DD); with --to")
    parser.add_argument("--to", dest="last", type=_date, help="last day, inclusive (YYYY-MM-DD)")
    parser.add_argument("--config", type=Path, required=True, help="project configuration (TOML)")
    parser.add_argument("--conninfo", default="", help="PostgreSQL conninfo (default: PG* variables)")
    parser.add_argument("--out", type=Path, required=True, help="directory for report.json/.csv/.html")
    parser.add_argument("--source", choices=SOURCES, default="rollup",
                        help="rollup (default) or scan: every raw reading, for checking")
    parser.add_argument("--no-refresh", dest="refresh", action="store_false",
                        help="do not pack new data into the rollups first (unpacked days are read raw)")
    parser.add_argument("--log-vkey", help="the log's verifier key (from `mrv anchor keygen`): write "
                                           "report.bundle.json, the evidence bundle of the report's envelopes")
    return parser


def main(argv: list[str], prog: str = "mrv report") -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        if args.period is not None:
            first, last = month_range(args.period)
        elif args.last is None:
            parser.error("--from needs --to")
        else:
            first, last = args.first, args.last
        config_bytes = args.config.read_bytes()
        config = load_project_config(tomllib.loads(config_bytes.decode()))
        if config.project_id != args.project:
            raise ValueError(f"the configuration is for project {config.project_id!r}, not {args.project!r}")
        periods = monthly_periods(first, last, config.utc_offset_minutes)
        check_ended(periods, config.utc_offset_minutes, int(time.time() * 1000))
        reports, evidence = assess_periods(args.conninfo, config, periods, source=args.source,
                                           refresh=args.refresh, progress=progress_bar(sys.stderr),
                                           log_vkey=args.log_vkey)
        doc = build_report(config, config_bytes, reports, source=args.source, evidence=evidence)
        paths = write_report(args.out, doc, None if evidence.bundle is None else evidence.bundle.data)
    except (OSError, ValueError, tomllib.TOMLDecodeError, MrvError, psycopg.Error) as e:
        print(f"{prog}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}", file=sys.stderr)
        return 1
    print(f"{len(periods)} period(s): net generation {doc['totals']['net_wh']} Wh, reductions "
          f"{doc['totals']['reductions_tco2e']} tCO2e -> {', '.join(str(p) for p in paths.values())}")
    return 0
