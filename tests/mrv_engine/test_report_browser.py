"""The HTML report as a browser renders it: headless Chromium prints it to PNG and PDF (kept under
test-artifacts/) and its DOM's numbers equal the JSON report's."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from mrv_engine.cli import main
from mrv_engine.report import period_fields, total_fields
from tests.mrv_engine.dbplant import PROJECT, project_toml, recording, store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium")


class _Fields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "data-field" in values:
            self.found.append(values)


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--no-first-run", f"--user-data-dir={tmp / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def _expected(doc: dict[str, Any], found: dict[str, str]) -> Any:
    field, period = found["data-field"], found.get("data-period")
    if field == "daily_export_wh":
        return next(d["wh"] for p in doc["periods"] for d in p["daily_export_wh"] if d["day"] == found["data-day"])
    if field == "checkpoint_size":
        return doc["checkpoint"]["size"]
    if period == "total":
        return total_fields(doc)[field]
    p = doc["periods"][int(period or -1)]
    if field.startswith("flag_"):
        flags = p["result"]["flags"]
        return {f["code"] for f in flags} if field == "flag_code" else {
            f["span"][field.removeprefix("flag_")] for f in flags}
    return period_fields(p)[field]


def test_rendered_report_shows_the_json_numbers(pg_conninfo: str, tmp_path: Path) -> None:
    store(pg_conninfo, [recording(hours=24 * 3)])
    (tmp_path / "project.toml").write_text(project_toml())
    out = tmp_path / "report"
    assert main([PROJECT, "--from", "2026-06-01", "--to", "2026-06-02", "--config", str(tmp_path / "project.toml"),
                 "--conninfo", pg_conninfo, "--out", str(out)]) == 0
    doc = json.loads((out / "report.json").read_text())
    page = (out / "report.html").as_uri()
    ARTIFACTS.mkdir(exist_ok=True)
    png, pdf = ARTIFACTS / "report.png", ARTIFACTS / "report.pdf"
    _chromium(tmp_path, "--window-size=1000,1800", f"--screenshot={png}", page)
    _chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
    parser = _Fields()
    parser.feed(_chromium(tmp_path, "--dump-dom", page).stdout)
    assert len(parser.found) >= 20
    for found in parser.found:
        expected, shown = _expected(doc, found), found["data-value"]
        if isinstance(expected, set):
            assert shown in {str(e) for e in expected}, found
        elif isinstance(expected, float):
            assert float(shown) == pytest.approx(expected, abs=1e-9), found
        elif isinstance(expected, int):
            assert int(float(shown)) == expected, found
        else:
            assert shown == str(expected), found
    fields = {f["data-field"] for f in parser.found}
    assert {"net_generation_wh", "reductions_tco2e", "completeness", "daily_export_wh", "asset_id"} <= fields
