"""Monitoring reports: periods of a project assessed from the database, written as JSON, CSV and one
self-contained HTML page (printable to PDF, charts drawn here as inline SVG).

The JSON document is the report; CSV and HTML are views of it. In the HTML every number is an element
with `data-field` (the JSON field), `data-period` (the period's index, or "total") and `data-value` (the
exact value), so that a test or a verifier can read the page back and compare it with the JSON.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrv_engine.columns import EnvelopeHashes
from mrv_engine.config import ProjectConfig
from mrv_engine.evidence import Evidence
from mrv_engine.net_generation import MeterRole
from mrv_engine.period_data import PeriodData
from mrv_engine.registers import register_steps
from mrv_engine.results import EnvelopeDigest, FlagCode, PeriodResult, canonical_json
from mrv_engine.timespan import Span, day_start_ms
from mrv_engine.units import MS_PER_DAY, MS_PER_HOUR, tonnes_text

FORMAT = "mrv-report/1"
BUNDLE = "report.bundle.json"  # the evidence bundle, next to report.json


def month_range(text: str) -> tuple[dt.date, dt.date]:
    """"2026-01..2026-03" (or one month, "2026-02") -> first and last day, inclusive."""
    first, _, last = text.partition("..")
    try:
        start = dt.datetime.strptime(first, "%Y-%m").date()
        end_month = dt.datetime.strptime(last or first, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"a period is YYYY-MM or YYYY-MM..YYYY-MM, got {text!r}") from None
    following = (end_month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    if following <= start:
        raise ValueError(f"the period {text!r} ends before it starts")
    return start, following - dt.timedelta(days=1)


def monthly_periods(first_day: dt.date, last_day: dt.date, utc_offset_minutes: int) -> list[Span]:
    """Calendar months of the project clock covering [first_day, last_day] (inclusive), clipped to it."""
    if last_day < first_day:
        raise ValueError(f"{last_day} precedes {first_day}")
    periods, day = [], first_day
    while day <= last_day:
        following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        end = min(following, last_day + dt.timedelta(days=1))
        periods.append(Span(day_start_ms(day, utc_offset_minutes), day_start_ms(end, utc_offset_minutes)))
        day = end
    return periods


def check_ended(periods: Sequence[Span], utc_offset_minutes: int, now_ms: int) -> None:
    """Refuse periods that have not ended: time still to come would be charged as unmetered import
    (the conservative gap rule), so a report over it would understate the reductions."""
    if periods and periods[-1].end_ms > now_ms:
        raise ValueError(f"the period ends {local_date(periods[-1].end_ms, utc_offset_minutes)}, in the future: "
                         "report a monitoring period once it has ended")


def _utc(ms: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)).isoformat(timespec="minutes") + "Z"


def local_date(ms: int, utc_offset_minutes: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms + utc_offset_minutes * 60_000)).date().isoformat()


def daily_export(config: ProjectConfig, data: PeriodData) -> list[tuple[int, int]]:
    """(local day start ms, metered export Wh of the main meters) per day of the period, before any
    adjustment: a step counts on the day it starts, and only if it lies inside the period."""
    period = data.period
    starts = np.arange(period.start_ms, period.end_ms, MS_PER_DAY, dtype=np.int64)
    totals = np.zeros(starts.size, np.int64)
    for meter in config.meters:
        if meter.role is not MeterRole.MAIN:
            continue
        steps = register_steps(data.meters[meter.id].export_wh, max_power_w=config.meter_spec(meter).max_power_w,
                               modulus_wh=meter.register_modulus_wh)
        inside = (steps.t0 >= period.start_ms) & (steps.t1 <= period.end_ms) & steps.counted
        day = (steps.t0[inside] - period.start_ms) // MS_PER_DAY
        np.add.at(totals, day, steps.delta_wh[inside])
    return list(zip(starts.tolist(), totals.tolist(), strict=True))


def arrival_gaps(data: PeriodData, min_ms: int) -> list[tuple[str, int, int]]:
    """(device, read from, delivered at) for each run of the period's envelopes that arrived at least
    `min_ms` after their device time: a gateway offline, its outbox delivering later."""
    gaps = []
    for device, arrivals in data.arrivals.items():
        late = arrivals.arrival_ms - arrivals.device_time_ms >= min_ms
        edges = np.diff(np.concatenate(([0], late.astype(np.int8), [0])))
        for start, stop in zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(),
                               strict=True):
            gaps.append((device, int(arrivals.device_time_ms[start]),
                         int(arrivals.arrival_ms[start:stop].max())))
    return gaps


@dataclass(frozen=True)
class PeriodReport:
    result: PeriodResult
    daily_export: list[tuple[int, int]]
    envelope_hashes: Sequence[str]  # columns.EnvelopeHashes from the database
    arrival_gaps: list[tuple[str, int, int]]


def _totals(results: Sequence[PeriodResult]) -> dict[str, Any]:
    baseline, project, leakage = (sum(getattr(r, k) for r in results) for k in ("baseline_kg", "project_kg",
                                                                                 "leakage_kg"))
    present, expected = sum(r.intervals_present for r in results), sum(r.intervals_expected for r in results)
    return {"export_wh": sum(r.export_wh for r in results), "import_wh": sum(r.import_wh for r in results),
            "net_wh": sum(r.net_generation_wh for r in results),
            "baseline_tco2e": tonnes_text(baseline), "project_tco2e": tonnes_text(project),
            "leakage_tco2e": tonnes_text(leakage), "reductions_tco2e": tonnes_text(baseline - project - leakage),
            "issuable_units": sum(r.issuable_units for r in results),
            "intervals_present": present, "intervals_expected": expected,
            "completeness": round(present / expected, 6) if expected else 1.0,
            "flags": sum(len(r.flags) for r in results)}


def _envelopes(periods: Sequence[PeriodReport]) -> EnvelopeDigest:
    hashes = [p.envelope_hashes for p in periods]
    if all(isinstance(h, EnvelopeHashes) for h in hashes):
        return EnvelopeDigest.of(EnvelopeHashes.union(hashes))  # type: ignore[arg-type]
    return EnvelopeDigest.of(h for period in hashes for h in period)


def build_report(config: ProjectConfig, config_bytes: bytes, periods: Sequence[PeriodReport], *,
                 source: str, evidence: Evidence) -> dict[str, Any]:
    """The report document (JSON-ready)."""
    results = [p.result for p in periods]
    offset = config.utc_offset_minutes
    parameters = {canonical_json(par.to_dict()): par.to_dict() for r in results for par in r.parameters}
    notes = list(evidence.notes)
    for i, p in enumerate(periods):
        gaps = [f for f in p.result.flags if f.code is FlagCode.GAP]
        if gaps:
            hours = sum(f.span.duration_ms for f in gaps) / MS_PER_HOUR
            notes.append(f"period {i}: {len(gaps)} gap(s) in the readings, {hours:.1f} h in all; register "
                         "differences keep their energy")
        for device, start, end in p.arrival_gaps:
            notes.append(f"period {i}: gap in delivery from {device}: envelopes read from {_utc(start)} arrived "
                         f"only at {_utc(end)} ({(end - start) / MS_PER_HOUR:.1f} h); nothing is missing")
    return {
        "format": FORMAT,
        "project_id": config.project_id,
        "methodology": results[0].methodology_id if results else None,
        "source": source,
        "periods": [{
            "index": i,
            "first_day": local_date(p.result.period.start_ms, offset),
            "last_day": local_date(p.result.period.end_ms - 1, offset),
            "result": p.result.to_dict(),
            "daily_export_wh": [{"day": local_date(t, offset), "wh": wh} for t, wh in p.daily_export],
        } for i, p in enumerate(periods)],
        "totals": _totals(results),
        "inputs": {
            "config_sha256": hashlib.sha256(config_bytes).hexdigest(),
            "meters": [{"id": m.id, "role": m.role.value, "device_id": m.device_id,
                        "accuracy_class": m.accuracy_class} for m in config.meters],
            "envelopes": (_envelopes(periods) if evidence.envelope_hashes is None
                          else EnvelopeDigest.of(evidence.envelope_hashes)).to_dict(),
            "parameters": list(parameters.values()),
        },
        "checkpoint": evidence.checkpoint,
        "evidence": None if evidence.bundle is None else {
            "bundle": BUNDLE, "envelopes": evidence.bundle.envelopes,
            "checkpoint_size": evidence.bundle.checkpoint_size},
        "notes": notes,
    }


CSV_COLUMNS = ("index", "first_day", "last_day", "asset_id", "export_wh", "import_wh", "net_wh",
               "baseline_tco2e", "project_tco2e", "reductions_tco2e", "issuable_units", "completeness",
               "flags", "envelopes")


def report_csv(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in doc["periods"]:
        r = p["result"]
        writer.writerow([p["index"], p["first_day"], p["last_day"], r["asset_id"], r["generation"]["export_wh"],
                         r["generation"]["import_wh"], r["generation"]["net_wh"],
                         r["emissions"]["baseline_tco2e"], r["emissions"]["project_tco2e"],
                         r["emissions"]["reductions_tco2e"], r["emissions"]["issuable_units"],
                         r["completeness"]["fraction"], len(r["flags"]), r["envelopes"]["count"]])
    return out.getvalue()


def period_fields(period: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a period as the HTML names them (data-field -> JSON value)."""
    r = period["result"]
    return {"export_wh": r["generation"]["export_wh"], "import_wh": r["generation"]["import_wh"],
            "net_generation_wh": r["generation"]["net_wh"], **r["emissions"],
            "completeness": r["completeness"]["fraction"],
            "intervals_present": r["completeness"]["intervals_present"],
            "intervals_expected": r["completeness"]["intervals_expected"],
            "flags": len(r["flags"]), "envelopes": r["envelopes"]["count"], "asset_id": r["asset_id"]}


def total_fields(doc: dict[str, Any]) -> dict[str, Any]:
    t = doc["totals"]
    return {"export_wh": t["export_wh"], "import_wh": t["import_wh"], "net_generation_wh": t["net_wh"],
            **{k: t[k] for k in ("baseline_tco2e", "project_tco2e", "leakage_tco2e", "reductions_tco2e",
                                 "issuable_units", "completeness", "intervals_present", "intervals_expected",
                                 "flags")},
            "envelopes": doc["inputs"]["envelopes"]["count"]}


def _shown(value: Any) -> str:
    return f"{value:,}".replace(",", "\u2009") if isinstance(value, int) else str(value)


def _cell(field: str, period: int | str, value: Any, tag: str = "td") -> str:
    return (f'<{tag} data-field="{field}" data-period="{period}" data-value="{html.escape(str(value))}">'
            f"{html.escape(_shown(value))}</{tag}>")


def _bars(title: str, labels: Sequence[str], values: Sequence[float], field: str, keys: Sequence[str],
          key_attr: str = "data-period") -> str:
    """A bar chart as inline SVG; each bar carries its value and key."""
    width, height, left, bottom = 720, 220, 60, 40
    top = max([abs(v) for v in values] + [1e-9])
    slot = (width - left - 10) / max(len(values), 1)
    parts = [f'<figure><figcaption>{html.escape(title)}</figcaption>'
             f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img"><line x1="{left}" y1="{height - bottom}" x2="{width - 10}" '
             f'y2="{height - bottom}" stroke="#444"/>'
             f'<text x="4" y="14" font-size="11">{html.escape(_shown(top))}</text>']
    for i, (label, value, key) in enumerate(zip(labels, values, keys, strict=True)):
        h = max(value, 0) / top * (height - bottom - 20)
        x = left + i * slot + slot * 0.15
        parts.append(f'<rect data-field="{field}" {key_attr}="{key}" data-value="{value}" x="{x:.1f}" '
                     f'y="{height - bottom - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" fill="#2a7f62">'
                     f"<title>{html.escape(label)}: {html.escape(_shown(value))}</title></rect>")
        if len(labels) <= 16 or i % max(len(labels) // 12, 1) == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" font-size="10">{html.escape(label)}</text>')
    parts.append("</svg></figure>")
    return "".join(parts)


_STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:3px 8px;text-align:right;font-size:12px}th{background:#eee}
td.text{text-align:left}td.id{word-break:break-all;max-width:16em;font:10px monospace}
figure{margin:1em 0;page-break-inside:avoid}figcaption{font-weight:bold}
.note{color:#555;font-size:12px}@media print{body{margin:0}}"""

_COLUMNS = (("export_wh", "export Wh"), ("import_wh", "import Wh"), ("net_generation_wh", "net generation Wh"),
            ("baseline_tco2e", "baseline tCO2e"), ("project_tco2e", "project tCO2e"),
            ("reductions_tco2e", "reductions tCO2e"), ("issuable_units", "issuable units"),
            ("completeness", "completeness"), ("flags", "flags"), ("envelopes", "envelopes"))


def report_html(doc: dict[str, Any]) -> str:
    periods = doc["periods"]
    labels = [p["first_day"][:7] for p in periods]
    keys = [str(p["index"]) for p in periods]
    fields = [period_fields(p) for p in periods]
    rows = "".join("<tr>" + f'<td class="text">{p["first_day"]} – {p["last_day"]}</td>'
                   + "".join(_cell(f, p["index"], values[f]) for f, _ in _COLUMNS)
                   + _cell("asset_id", p["index"], values["asset_id"]).replace("<td", '<td class="text id"', 1)
                   + "</tr>" for p, values in zip(periods, fields, strict=True))
    totals = total_fields(doc)
    rows += ('<tr><th class="text">total</th>'
             + "".join(_cell(f, "total", totals[f], "th") for f, _ in _COLUMNS) + "<th></th></tr>")
    daily = [(d["day"], d["wh"]) for p in periods for d in p["daily_export_wh"]]
    flags = "".join(
        f'<tr><td data-field="flag_code" data-period="{p["index"]}" data-value="{f["code"]}" class="text">'
        f'{f["code"]}</td><td class="text">{html.escape(f["device_id"])}</td>'
        f'<td data-field="flag_start_ms" data-period="{p["index"]}" data-value="{f["span"]["start_ms"]}">'
        f'{f["span"]["start_ms"]}</td>'
        f'<td data-field="flag_end_ms" data-period="{p["index"]}" data-value="{f["span"]["end_ms"]}">'
        f'{f["span"]["end_ms"]}</td><td class="text">{html.escape(json.dumps(f["evidence"]))}</td></tr>'
        for p in periods for f in p["result"]["flags"])
    checkpoint = doc["checkpoint"]
    anchor = ("none" if checkpoint is None else
              f'tree size <span data-field="checkpoint_size" data-period="total" data-value="{checkpoint["size"]}">'
              f'{checkpoint["size"]}</span>, root <code>{checkpoint["root"]}</code>')
    bundle = doc["evidence"]
    proofs = ("none (see the notes)" if bundle is None else
              f'<code>{html.escape(bundle["bundle"])}</code>, {bundle["envelopes"]} envelopes proved against the '
              f'checkpoint of tree size {bundle["checkpoint_size"]}; check it with '
              f'<code>mrv verify {html.escape(bundle["bundle"])}</code>')
    envelopes = doc["inputs"]["envelopes"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Monitoring report {html.escape(doc["project_id"])}</title>
<style>{_STYLE}</style></head><body>
<h1>Monitoring report: {html.escape(doc["project_id"])}</h1>
<p>Methodology {html.escape(str(doc["methodology"]))}; data read from the {html.escape(doc["source"])} path;
configuration SHA-256 <code>{doc["inputs"]["config_sha256"]}</code>;
{envelopes["count"]} envelopes, digest <code>{envelopes["sha256"]}</code>.</p>
<p>Checkpoint covering every envelope: {anchor}</p>
<p>Evidence bundle: {proofs}</p>
<table><tr><th>period</th>{"".join(f"<th>{h}</th>" for _, h in _COLUMNS)}<th>carbon-asset id</th></tr>
{rows}</table>
{_bars("Net generation per period (Wh)", labels, [f["net_generation_wh"] for f in fields],
       "net_generation_wh", keys)}
{_bars("Emission reductions per period (tCO2e)", labels, [float(f["reductions_tco2e"]) for f in fields],
       "reductions_tco2e", keys)}
{_bars("Data completeness per period", labels, [f["completeness"] for f in fields], "completeness", keys)}
{_bars("Metered export per day (Wh, before adjustments)", [d[5:] for d, _ in daily], [wh for _, wh in daily],
       "daily_export_wh", [d for d, _ in daily], "data-day")}
<h2>Flags</h2>
<table><tr><th>code</th><th>device</th><th>from (ms)</th><th>to (ms)</th><th>evidence</th></tr>{flags}</table>
<h2>Notes</h2>{"".join(f'<p class="note">{html.escape(n)}</p>' for n in doc["notes"])}
</body></html>
"""


def write_report(out_dir: Path, doc: dict[str, Any], bundle: bytes | None = None) -> dict[str, Path]:
    """report.json, report.csv and report.html in `out_dir`, and the evidence bundle the report names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "csv": out_dir / "report.csv", "html": out_dir / "report.html"}
    if (bundle is None) != (doc["evidence"] is None):
        raise ValueError("the report names an evidence bundle if and only if one is written with it")
    if bundle is None:
        (out_dir / BUNDLE).unlink(missing_ok=True)  # one of an earlier report
    else:
        paths["bundle"] = out_dir / BUNDLE
        paths["bundle"].write_bytes(bundle)
    paths["json"].write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    paths["csv"].write_text(report_csv(doc))
    paths["html"].write_text(report_html(doc))
    return paths
