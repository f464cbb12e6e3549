"""Loading periods from PostgreSQL: the rollup path equals the raw scan to the reading, and both equal the
pure engine on the same data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mrv_engine import assess_period
from mrv_engine.db import LoadedPeriod, Source, connect, load_period, refresh_rollups
from tests.mrv_engine.builders import DAY, HOUR
from tests.mrv_engine.dbplant import DAY1, PERIOD, project_config, pure_data, recording, store


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


@pytest.mark.parametrize("days", [1, 3])
def test_periods_of_whole_and_partial_utc_days(pg_conninfo: str, days: int) -> None:
    store(pg_conninfo, [recording(hours=24 * 4 + 1)])
    refresh_rollups(pg_conninfo)
    period = type(PERIOD)(DAY1 + DAY // 3, DAY1 + DAY // 3 + days * DAY)
    _same(_load(pg_conninfo, "rollup", period), _load(pg_conninfo, "scan", period))
