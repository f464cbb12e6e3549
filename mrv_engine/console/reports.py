"""Monitoring reports for the console: the `mrv report` engine run for a project and period, cached on disk.

A project's configuration is `<projects_dir>/<project_id>.toml` (what `mrv report --config` takes). A
generated report (report.json, .csv, .html and report.bundle.json, the evidence bundle) is kept under
`<reports_dir>/<project>/<period>/<data version>/` (see `_data_version`): new data, a new anchor or a new
configuration gives a new report, which replaces the older one on disk; anything else is served from disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import psycopg
from pydantic import BaseModel, Field

from anchoring.store import log_size
from mrv_engine.cli import assess_periods
from mrv_engine.config import ProjectConfig, load_project_config
from mrv_engine.console.config import ConsoleConfig
from mrv_engine.console.queries import NotFound
from mrv_engine.errors import MrvError
from mrv_engine.report import BUNDLE, build_report, check_ended, month_range, monthly_periods, write_report
from protocol.ids import check_id

MAX_DAYS = 731  # longest period the console generates a report for
_DAYS = re.compile(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")
_generating = threading.Lock()  # one report at a time: each one reads a project's whole period


class ReportError(ValueError):
    """The report cannot be made (bad configuration, engine refusal); the message says why."""


class ReportResponse(BaseModel):
    project_id: str
    period: str = Field(description="canonical form: YYYY-MM, YYYY-MM..YYYY-MM or YYYY-MM-DD..YYYY-MM-DD")
    first_day: dt.date
    last_day: dt.date
    data_version: str = Field(description="log size, newest envelope id and configuration hash it was made from")
    generated_at: dt.datetime
    evidence_available: bool = Field(description="an evidence bundle was written (GET .../evidence)")
    report: dict[str, Any] = Field(description="the report document (format mrv-report/1), as `mrv report` writes")


def parse_period(text: str) -> tuple[str, dt.date, dt.date]:
    """"2026-11", "2026-01..2026-03" (months) or "2026-11-01..2026-11-08" (days, inclusive) ->
    (canonical text, first day, last day); ValueError with the accepted forms otherwise."""
    days = _DAYS.fullmatch(text)
    try:
        if days:
            first, last = dt.date.fromisoformat(days[1]), dt.date.fromisoformat(days[2])
            if last < first:
                raise ValueError(f"the period {text!r} ends before it starts")
            canonical = f"{first}..{last}"
        else:
            first, last = month_range(text)
            canonical = f"{first:%Y-%m}" if (first.year, first.month) == (last.year, last.month) else \
                f"{first:%Y-%m}..{last:%Y-%m}"
    except ValueError as e:
        raise ValueError(f"{e}; a period is YYYY-MM, YYYY-MM..YYYY-MM or YYYY-MM-DD..YYYY-MM-DD") from None
    if (last - first).days >= MAX_DAYS:
        raise ValueError(f"a period is at most {MAX_DAYS} days")
    return canonical, first, last


def project_config_path(config: ConsoleConfig, project_id: str) -> Path:
    check_id(project_id, "project id")  # ids have no path separators
    return config.projects_dir / f"{project_id}.toml"


def load_project(config: ConsoleConfig, project_id: str) -> tuple[ProjectConfig, bytes]:
    path = project_config_path(config, project_id)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"project {project_id} has no configuration ({path.name} in the projects directory)") from None
    try:
        project = load_project_config(tomllib.loads(data.decode()))
    except (ValueError, MrvError, UnicodeDecodeError) as e:
        raise ReportError(f"the configuration of project {project_id} is not usable: {e}") from None
    if project.project_id != project_id:
        raise ReportError(f"{path.name} is the configuration of project {project.project_id!r}")
    return project, data


def _data_version(conn: psycopg.Connection, config_bytes: bytes, log_vkey: str | None) -> str:
    """What a report depends on besides its period: the log's size, the newest envelope (one not logged
    yet changes the report's notes), the newest checkpoint a ledger recorded (the bundle proves against
    it), the configuration and the log key."""
    row = conn.execute("SELECT (SELECT coalesce(max(id), 0) FROM envelopes), (SELECT coalesce(max(checkpoint_size), "
                       "-1) FROM anchors WHERE receipt IS NOT NULL)").fetchone()
    newest, anchored = (0, -1) if row is None else (int(row[0]), int(row[1]))
    inputs = hashlib.sha256(config_bytes + b"\0" + (log_vkey or "").encode()).hexdigest()[:16]
    return f"{log_size(conn)}-{newest}-{anchored}-{inputs}"


def _generate(config: ConsoleConfig, project: ProjectConfig, config_bytes: bytes, first: dt.date, last: dt.date,
              out: Path) -> None:
    periods = monthly_periods(first, last, project.utc_offset_minutes)
    try:
        check_ended(periods, project.utc_offset_minutes, int(time.time() * 1000))
        # Read only: ingest keeps the rollups (`ingest.rollups`); days it has not packed yet are read raw.
        reports, evidence = assess_periods(config.conninfo, project, periods, refresh=False,
                                           log_vkey=config.log_vkey)
    except (ValueError, MrvError) as e:
        raise ReportError(f"the report cannot be made: {e}") from None
    doc = build_report(project, config_bytes, reports, source="rollup", evidence=evidence)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out.parent))
    try:
        write_report(staging, doc, None if evidence.bundle is None else evidence.bundle.data)
        os.replace(staging, out)  # readers see a whole report or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (out / "report.json").is_file():
            raise


def report_dir(conn: psycopg.Connection, config: ConsoleConfig, project_id: str, period: str, *,
               regenerate: bool = False) -> tuple[Path, str, dt.date, dt.date, str]:
    """The directory holding the report of `project_id` over `period` for the current data, generating it
    when absent (or when `regenerate`): (directory, canonical period, first day, last day, data version)."""
    canonical, first, last = parse_period(period)
    project, config_bytes = load_project(config, project_id)
    version = _data_version(conn, config_bytes, config.log_vkey)
    out = config.reports_dir / project_id / canonical / version
    with _generating:
        if regenerate and out.exists():
            shutil.rmtree(out)
        if not (out / "report.json").is_file():
            _generate(config, project, config_bytes, first, last, out)
            for older in out.parent.iterdir():  # reports of earlier data are never served again
                if older != out:
                    shutil.rmtree(older, ignore_errors=True)
    return out, canonical, first, last, version


def period_report(conn: psycopg.Connection, config: ConsoleConfig, project_id: str, period: str, *,
                  regenerate: bool = False) -> ReportResponse:
    """The report document of a project and period (cached; see the module docstring)."""
    out, canonical, first, last, version = report_dir(conn, config, project_id, period, regenerate=regenerate)
    doc = json.loads((out / "report.json").read_text())
    return ReportResponse(project_id=project_id, period=canonical, first_day=first, last_day=last,
                          data_version=version,
                          generated_at=dt.datetime.fromtimestamp((out / "report.json").stat().st_mtime, dt.UTC),
                          evidence_available=(out / BUNDLE).is_file(), report=doc)


def evidence_bundle(conn: psycopg.Connection, config: ConsoleConfig, project_id: str, period: str) -> Path:
    """The evidence bundle file of the report (for `mrv verify`); NotFound, with the report's reason, if the
    report has none (no log key configured, or no checkpoint covers its envelopes yet)."""
    out, *_ = report_dir(conn, config, project_id, period)
    bundle = out / BUNDLE
    if not bundle.is_file():
        notes = json.loads((out / "report.json").read_text()).get("notes", [])
        why = next((n for n in notes if "evidence bundle" in n or "checkpoint" in n), "no bundle was written")
        raise NotFound(f"the report has no evidence bundle: {why}")
    return bundle
