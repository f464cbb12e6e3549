"""Loading periods from PostgreSQL: the rollup path equals the raw scan to the reading, and both equal the
pure engine on the same data."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import tomllib
from typing import Any

import numpy as np
import psycopg
import pytest

from mrv_engine import EnvelopeDigest, FlagCode, assess_period, load_project_config
from mrv_engine.cli import run_report
from mrv_engine.db import SOURCES, LoadedPeriod, Source, connect, connect_pair, load_period, refresh_rollups
from mrv_engine.seed import DeviceRecording
from protocol.metrics import Metric, Quality
from simulators.faults import FaultWindow, MeterFault
from tests.mrv_engine.builders import DAY, HOUR
from tests.mrv_engine.dbplant import (
    DAY1,
    PERIOD,
    project_config,
    project_toml,
    pure_data,
    recording,
    store,
)


def _load(conninfo: str, source: Source, period: Any = PERIOD) -> LoadedPeriod:
    with connect(conninfo) as conn:
        return load_period(conn, project_config(), period, source=source)


def _same(a: LoadedPeriod, b: LoadedPeriod) -> None:
    assert a.data.meters.keys() == b.data.meters.keys()
    for meter_id, readings in a.data.meters.items():
        other = b.data.meters[meter_id]
        for x, y in ((readings.export_wh, other.export_wh), (readings.import_wh, other.import_wh)):
            assert x is not None and y is not None
            assert np.array_equal(x.timestamps_ms, y.timestamps_ms)
            assert np.array_equal(x.values_wh, y.values_wh)
            assert np.array_equal(x.quality, y.quality)
    assert a.data.samples.keys() == b.data.samples.keys()
    for key, series in a.data.samples.items():
        assert np.array_equal(series.timestamps_ms, b.data.samples[key].timestamps_ms)
        assert np.array_equal(series.values, b.data.samples[key].values)
    assert a.data.arrivals.keys() == b.data.arrivals.keys()
    for device, arrivals in a.data.arrivals.items():
        assert np.array_equal(arrivals.device_time_ms, b.data.arrivals[device].device_time_ms)
        assert np.array_equal(arrivals.arrival_ms, b.data.arrivals[device].arrival_ms)
    assert a.data.envelope_hashes == b.data.envelope_hashes
    assert np.array_equal(a.envelope_ids, b.envelope_ids)


def test_rollup_equals_scan_and_the_pure_engine(pg_conninfo: str) -> None:
    rec = recording()
    store(pg_conninfo, [rec])
    assert refresh_rollups(pg_conninfo) > 0
    rollup, scan = _load(pg_conninfo, "rollup"), _load(pg_conninfo, "scan")
    _same(rollup, scan)
    config = project_config()
    result = assess_period(config, rollup.data)
    assert result.to_dict() == assess_period(config, scan.data).to_dict()
    pure = assess_period(config, pure_data(config, [rec])).to_dict()
    got = result.to_dict()
    for key in ("asset_id", "envelopes"):
        del pure[key], got[key]
    assert got == pure
    assert result.net_generation_wh > 1_000_000
    # every reading in the window comes from a counted envelope; boundary readings lie just outside
    assert rollup.envelope_ids.size == result.envelopes.count
    assert 1440 <= result.envelopes.count <= 1442


def test_a_connection_pair_reads_one_snapshot(pg_conninfo: str) -> None:
    store(pg_conninfo, [recording(hours=2)])
    with connect_pair(pg_conninfo) as (conn, helper):
        store(pg_conninfo, [recording("pv-2", hours=2)])  # committed after the snapshot was taken
        query = "SELECT count(*), count(DISTINCT device_id) FROM envelopes"
        counts = [c.execute(query).fetchone() for c in (conn, helper)]
        assert counts[0] == counts[1] and counts[0] is not None and counts[0][1] == 1
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            helper.execute("DELETE FROM envelopes")


def test_late_data_and_days_not_refreshed_are_read_raw(pg_conninfo: str) -> None:
    rec = recording()
    late = (rec.device_time_ms >= PERIOD.start_ms + 6 * HOUR) & (rec.device_time_ms < PERIOD.start_ms + 9 * HOUR)
    store(pg_conninfo, [rec.select(~late)])
    refresh_rollups(pg_conninfo)
    store(pg_conninfo, [rec.select(late)])  # a gateway's backlog, delivered after the refresh
    rollup, scan = _load(pg_conninfo, "rollup"), _load(pg_conninfo, "scan")
    _same(rollup, scan)
    assert scan.data.meters["M-pv-1"].export_wh.timestamps_ms.size == 1441  # every minute of the day, both ends
    refresh_rollups(pg_conninfo)
    _same(_load(pg_conninfo, "rollup"), scan)


def test_a_day_is_packed_once_it_has_ended(pg_conninfo: str) -> None:
    """Refreshes during a day leave it to the raw rows (deferred) instead of re-packing it each time; the
    first refresh after it has ended packs it. Reports read alike in every state (migration 0009)."""
    store(pg_conninfo, [recording()])  # UTC days 05-31 .. 06-03
    today = dt.date(2026, 6, 2)

    def state(conn: psycopg.Connection) -> tuple[set[dt.date], set[dt.date], set[dt.date]]:
        frames = {d for (d,) in conn.execute("SELECT day FROM readings_frames")}
        envelope_days = {d for (d,) in conn.execute("SELECT day FROM envelopes_packed")}
        pending = {d for (d,) in conn.execute("SELECT DISTINCT day FROM rollup_pending()")}
        return frames, envelope_days, pending

    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT refresh_rollups(%s)", [today]).fetchone() == (2,)
        closed, deferred = {dt.date(2026, 5, 31), dt.date(2026, 6, 1)}, {today, dt.date(2026, 6, 3)}
        assert state(conn) == (closed, closed, deferred)
        _same(_load(pg_conninfo, "rollup"), _load(pg_conninfo, "scan"))  # 06-02 read raw
        assert conn.execute("SELECT refresh_rollups(%s)", [today]).fetchone() == (0,)  # later that day
        assert state(conn) == (closed, closed, deferred)
        assert conn.execute("SELECT refresh_rollups(%s)", [today + dt.timedelta(days=2)]).fetchone() == (2,)
        assert state(conn) == (closed | deferred, closed | deferred, set())
    _same(_load(pg_conninfo, "rollup"), _load(pg_conninfo, "scan"))


def test_metrics_missing_from_some_envelopes_read_alike(pg_conninfo: str) -> None:
    # irradiance in every third envelope, power missing from every fifth: the frames are not dense
    rec = recording()
    irradiance, power = rec.values[Metric.IRRADIANCE_W_M2].copy(), rec.values[Metric.ACTIVE_POWER_W].copy()
    irradiance[np.arange(irradiance.size) % 3 != 0] = np.nan
    power[::5] = np.nan
    store(pg_conninfo, [DeviceRecording(rec.device_id, rec.device_time_ms, rec.received_ms,
                                        {**rec.values, Metric.IRRADIANCE_W_M2: irradiance,
                                         Metric.ACTIVE_POWER_W: power}, rec.quality, rec.capacity_w)])
    refresh_rollups(pg_conninfo)
    with psycopg.connect(pg_conninfo) as conn:
        row = conn.execute("SELECT count(*) FILTER (WHERE key_index IS NOT NULL), count(*) FROM readings_frames")
        sparse, frames = row.fetchone() or (0, 0)
    assert frames > 0 and sparse == frames
    rollup, scan = _load(pg_conninfo, "rollup"), _load(pg_conninfo, "scan")
    _same(rollup, scan)
    assert 0 < rollup.data.samples[("pv-1", Metric.IRRADIANCE_W_M2)].timestamps_ms.size < 600


@pytest.mark.parametrize("days", [1, 3])
def test_periods_of_whole_and_partial_utc_days(pg_conninfo: str, days: int) -> None:
    store(pg_conninfo, [recording(hours=24 * 4 + 1)])
    refresh_rollups(pg_conninfo)
    period = type(PERIOD)(DAY1 + DAY // 3, DAY1 + DAY // 3 + days * DAY)
    _same(_load(pg_conninfo, "rollup", period), _load(pg_conninfo, "scan", period))


def _replaced_meter(rec: DeviceRecording, at_h: float) -> DeviceRecording:
    """`rec` with its export meter replaced `at_h` hours into the period (a new register from 5 Wh, the
    reading flagged) and two readings the meter could not take."""
    export = rec.values[Metric.ENERGY_EXPORT_WH].copy()
    i = int(np.searchsorted(rec.device_time_ms, PERIOD.start_ms + int(at_h * HOUR)))
    export[i:] = export[i:] - export[i] + 5
    quality = np.zeros(export.size, np.int64)
    quality[i] = Quality.REGISTER_RESET
    quality[i + 30:i + 32] = Quality.SOURCE_ERROR
    return DeviceRecording(rec.device_id, rec.device_time_ms, rec.received_ms,
                           {**rec.values, Metric.ENERGY_EXPORT_WH: export},
                           {Metric.ENERGY_EXPORT_WH: quality}, rec.capacity_w)


def test_every_fault_gives_the_same_report_from_rollups_and_scan(pg_conninfo: str) -> None:
    def window(fault: MeterFault, start_h: float, end_h: float, **kw: Any) -> FaultWindow:
        return FaultWindow(fault, PERIOD.start_ms + int(start_h * HOUR), PERIOD.start_ms + int(end_h * HOUR), **kw)

    faulty = recording("pv-1", faults=[window(MeterFault.METER_OUTAGE, 7, 8),
                                       window(MeterFault.FROZEN_REGISTER, 11, 11.5),
                                       window(MeterFault.NIGHT_GENERATION, 1, 2),
                                       window(MeterFault.SPIKE, 12, 12.02),
                                       window(MeterFault.CLOCK_DRIFT, 13, 14)])
    copy = recording("pv-2", seed=2, faults=[window(MeterFault.DUPLICATED_PATTERN, 9, 10, donor_seed=1)])
    recordings = [_replaced_meter(faulty, 16), copy]
    late = (copy.device_time_ms >= PERIOD.start_ms + 6 * HOUR) & (copy.device_time_ms < PERIOD.start_ms + 9 * HOUR)
    store(pg_conninfo, [recordings[0], copy.select(~late)])
    refresh_rollups(pg_conninfo)
    store(pg_conninfo, [copy.select(late)])  # a backlog the rollups have not packed
    devices = ["pv-1", "pv-2"]
    docs = [run_report(pg_conninfo, project_config(devices), project_toml(devices).encode(), [PERIOD],
                       source=source, refresh=False) for source in SOURCES]
    assert docs[0]["source"] == "rollup" and docs[1]["source"] == "scan"
    assert {**docs[0], "source": None} == {**docs[1], "source": None}
    codes = {f["code"] for f in docs[0]["periods"][0]["result"]["flags"]}
    assert codes >= {FlagCode.GAP, FlagCode.FROZEN_REGISTER, FlagCode.PV_EXPORT_AT_NIGHT, FlagCode.ABOVE_NAMEPLATE,
                     FlagCode.CLOCK_SKEW, FlagCode.DUPLICATED_PATTERN, FlagCode.REGISTER_RESET,
                     FlagCode.UNUSABLE_READINGS}


def test_certificates_issued_for_the_period_are_not_credited_again(pg_conninfo: str) -> None:
    store(pg_conninfo, [recording()])
    spec = tomllib.loads(project_toml())
    plain = run_report(pg_conninfo, project_config(), b"plain", [PERIOD])
    spec["claims"] = {"declared": ["CDM", "GEC"], "policy": "deduct", "issued": [
        {"scheme": "GEC", "first_day": dt.date(2026, 6, 2), "last_day": dt.date(2026, 6, 2), "mwh": 1,
         "reference": "GEC serials 1-1"}]}
    claimed = run_report(pg_conninfo, load_project_config(spec), b"claimed", [PERIOD])
    assert plain["totals"]["net_wh"] > 1_000_000
    assert claimed["totals"]["net_wh"] == plain["totals"]["net_wh"] - 1_000_000
    flags = claimed["periods"][0]["result"]["flags"]
    assert [f["evidence"]["GEC_wh"] for f in flags if f["code"] == FlagCode.CLAIMED_ELSEWHERE] == [1_000_000]


def test_a_report_of_two_periods_digests_the_union_of_their_envelopes(pg_conninfo: str) -> None:
    store(pg_conninfo, [recording()])
    periods = [type(PERIOD)(DAY1, DAY1 + DAY), PERIOD]
    docs = [run_report(pg_conninfo, project_config(), b"", periods, source=source) for source in SOURCES]
    assert {**docs[0], "source": None} == {**docs[1], "source": None}
    loaded = [_load(pg_conninfo, "scan", p) for p in periods]
    hex_union = [h for one in loaded for h in one.data.envelope_hashes]  # duplicates at the shared boundary
    assert len(set(hex_union)) < len(hex_union)
    assert docs[0]["inputs"]["envelopes"] == EnvelopeDigest.of(hex_union).to_dict()


def test_db_cli_refreshes_the_rollups_once_or_on_a_timer(pg_conninfo: str) -> None:
    store(pg_conninfo, [recording()])
    command = [sys.executable, "-m", "mrv_cli", "db", "refresh-rollups", "--conninfo", pg_conninfo]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    with psycopg.connect(pg_conninfo) as conn:
        frames = conn.execute("SELECT count(*) FROM readings_frames").fetchone()
    assert frames is not None and first.stdout.startswith(f"packed {frames[0]} device-day(s)") and frames[0] > 0
    with subprocess.Popen([*command, "--every", "0.1"], stdout=subprocess.PIPE, text=True) as timer:
        assert timer.stdout is not None
        lines = [timer.stdout.readline() for _ in range(2)]  # nothing new: nothing packed, twice
        timer.send_signal(signal.SIGINT)
        assert timer.wait(10) == 0
    assert all(line.startswith("packed 0 device-day(s)") for line in lines)
