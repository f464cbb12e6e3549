"""Monitoring reports from the database: equal to the pure engine, a flag per simulated fault, a gateway
outage that changes nothing but the notes, and the CLI's three files."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mrv_engine import FlagCode, assess_period
from mrv_engine.cli import main, run_report
from mrv_engine.seed import DeviceRecording
from simulators.faults import FaultWindow, MeterFault
from tests.mrv_engine.builders import HOUR
from tests.mrv_engine.dbplant import PERIOD, PROJECT, project_config, project_toml, pure_data, recording, store

LOCAL = PERIOD.start_ms  # local midnight starting the reported day


def _report(conninfo: str, recordings: Sequence[DeviceRecording]) -> dict[str, Any]:
    devices = [r.device_id for r in recordings]
    store(conninfo, recordings)
    return run_report(conninfo, project_config(devices), project_toml(devices).encode(), [PERIOD])


def _codes(doc: dict[str, Any]) -> set[str]:
    return {f["code"] for f in doc["periods"][0]["result"]["flags"]}


def test_report_equals_the_pure_engine(pg_conninfo: str) -> None:
    rec = recording()
    doc = _report(pg_conninfo, [rec])
    config = project_config()
    pure = assess_period(config, pure_data(config, [rec])).to_dict()
    got = dict(doc["periods"][0]["result"])
    for key in ("asset_id", "envelopes"):
        del pure[key], got[key]
    assert got == pure
    assert doc["totals"]["net_wh"] == pure["generation"]["net_wh"] > 0
    assert doc["checkpoint"] is None and "not in the Merkle log" in doc["notes"][0]
    assert doc["periods"][0]["result"]["asset_id"].startswith("mrv1:")
    assert sum(d["wh"] for d in doc["periods"][0]["daily_export_wh"]) == pure["generation"]["export_wh"]


def test_report_names_the_checkpoint_covering_every_envelope(pg_conninfo: str) -> None:
    store(pg_conninfo, [recording()])
    with psycopg.connect(pg_conninfo) as conn:
        conn.execute("INSERT INTO log_leaves (leaf_index, envelope_id, leaf_hash) "
                     "SELECT row_number() OVER (ORDER BY id) - 1, id, hash FROM envelopes")
        size = conn.execute("SELECT count(*) FROM log_leaves").fetchone()
        assert size is not None
        conn.execute("INSERT INTO checkpoints (size, root, note) VALUES (%s, %s, 'test note')",
                     [size[0], bytes(32)])
    doc = run_report(pg_conninfo, project_config(), project_toml().encode(), [PERIOD])
    assert doc["checkpoint"] == {"size": size[0], "root": "00" * 32, "note": "test note"}
    assert doc["notes"][0] == f"checkpoint of tree size {size[0]} covers every envelope used"


def _window(fault: MeterFault, start_h: float, end_h: float, **kw: Any) -> FaultWindow:
    return FaultWindow(fault, LOCAL + int(start_h * HOUR), LOCAL + int(end_h * HOUR), **kw)


@pytest.mark.parametrize(("fault", "start_h", "end_h", "code"), [
    (MeterFault.METER_OUTAGE, 10, 12, FlagCode.GAP),
    (MeterFault.FROZEN_REGISTER, 11, 11.5, FlagCode.FROZEN_REGISTER),
    (MeterFault.NIGHT_GENERATION, 1, 2, FlagCode.PV_EXPORT_AT_NIGHT),
    (MeterFault.SPIKE, 12, 12.02, FlagCode.ABOVE_NAMEPLATE),
    (MeterFault.CLOCK_DRIFT, 10, 14, FlagCode.CLOCK_SKEW),
])
def test_each_fault_raises_its_flag(pg_conninfo: str, fault: MeterFault, start_h: float, end_h: float,
                                    code: FlagCode) -> None:
    clean = _codes(_report(pg_conninfo, [recording(device_id="pv-0")]))
    assert code not in clean
    faulty = _report(pg_conninfo, [recording(faults=[_window(fault, start_h, end_h)])])
    assert code in _codes(faulty)


def test_duplicated_pattern_is_flagged(pg_conninfo: str) -> None:
    copied = _window(MeterFault.DUPLICATED_PATTERN, 10, 12, donor_seed=1)
    doc = _report(pg_conninfo, [recording(), recording("pv-2", seed=2, faults=[copied])])
    flagged = {f["device_id"] for f in doc["periods"][0]["result"]["flags"]
               if f["code"] == FlagCode.DUPLICATED_PATTERN}
    assert flagged == {"pv-1", "pv-2"}


def test_gateway_offline_for_24_hours_changes_nothing_but_the_notes(pg_conninfo: str) -> None:
    outage = (LOCAL - 6 * HOUR, LOCAL + 18 * HOUR)
    online = _report(pg_conninfo, [recording()])
    # the same plant under another device id, in the same database
    offline = _report(pg_conninfo, [recording("pv-9", offline=[outage])])
    a, b = online["periods"][0]["result"], offline["periods"][0]["result"]
    assert a["generation"] == b["generation"] and a["emissions"] == b["emissions"]
    assert a["completeness"] == b["completeness"]
    assert not any("gap in delivery" in n for n in online["notes"])
    # the period starts 6 h into the outage: its first envelopes waited 18 h
    assert any("gap in delivery from pv-9" in n and "(18.0 h)" in n for n in offline["notes"])


def test_cli_writes_json_csv_and_html(pg_conninfo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    store(pg_conninfo, [recording(hours=24 * 5)])
    config = tmp_path / "project.toml"
    config.write_text(project_toml())
    out = tmp_path / "out"
    code = main([PROJECT, "--from", "2026-06-01", "--to", "2026-06-04", "--config", str(config),
                 "--conninfo", pg_conninfo, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "periods" in capsys.readouterr().err  # the progress bar
    doc = json.loads((out / "report.json").read_text())
    assert [p["first_day"] for p in doc["periods"]] == ["2026-06-01"]
    assert doc["periods"][0]["last_day"] == "2026-06-04"
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert int(rows[0]["net_wh"]) == doc["periods"][0]["result"]["generation"]["net_wh"] == doc["totals"]["net_wh"]
    assert 'data-field="net_generation_wh"' in (out / "report.html").read_text()
    assert main([PROJECT, "--period", "2026-06", "--config", str(config), "--conninfo", pg_conninfo,
                 "--out", str(out), "--source", "scan"]) == 0
    scanned = json.loads((out / "report.json").read_text())
    assert scanned["source"] == "scan"
    assert main(["other", "--period", "2026-06", "--config", str(config), "--out", str(out)]) == 1
    assert "not 'other'" in capsys.readouterr().err
    next_year = dt.date.today().year + 1
    assert main([PROJECT, "--period", f"{next_year}-01", "--config", str(config), "--conninfo", pg_conninfo,
                 "--out", str(tmp_path / "future")]) == 1
    assert f"the period ends {next_year}-02-01, in the future" in capsys.readouterr().err
    assert not (tmp_path / "future").exists()
