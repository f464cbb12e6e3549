"""Each plausibility check fires on a crafted series and stays quiet on a clean one."""

from __future__ import annotations

import numpy as np
import pytest

from mrv_engine import plausibility
from mrv_engine.results import FlagCode
from mrv_engine.series import ArrivalSeries, RegisterSeries, SampleSeries
from mrv_engine.timespan import Span
from protocol.metrics import Quality
from tests.mrv_engine.builders import DAY, HOUR, INTERVAL, T0, register, steps_of, times, varied

CAPACITY_W = 1e6  # 1 MW: at most 250 kWh per quarter-hour
BEIJING = (39.9, 116.4)
NOON = T0 + 12 * HOUR  # T0 is local midnight (UTC+8); solar noon in Beijing is about 12:15 local


def _samples(values: list[float], start: int = T0, interval: int = INTERVAL // 3) -> SampleSeries:
    return SampleSeries(times(len(values), start, interval), np.asarray(values, dtype=np.float64))


def test_above_nameplate() -> None:
    increments = varied(8)
    increments[4] = 300_000
    (flag,) = plausibility.above_nameplate("m", steps_of(register(increments)), CAPACITY_W, 0.02)
    assert flag.code is FlagCode.ABOVE_NAMEPLATE and flag.export_cap_w == CAPACITY_W
    assert flag.span == Span(T0 + 4 * INTERVAL, T0 + 5 * INTERVAL)
    assert flag.evidence_dict() == {"intervals": 1, "measured_wh": 300_000, "nameplate_wh": 250_000}
    assert plausibility.above_nameplate("m", steps_of(register(varied(8))), CAPACITY_W, 0.02) == []


def test_decreasing_register() -> None:
    series = RegisterSeries.of(times(4), [1_000, 2_000, 50, 150])
    (flag,) = plausibility.register_discontinuities("m", steps_of(series), "export")
    assert flag.code is FlagCode.REGISTER_RESET
    assert flag.evidence_dict() == {"register": "export", "before_wh": 2_000, "after_wh": 50}
    rollover = plausibility.register_discontinuities(
        "m", steps_of(RegisterSeries.of(times(3), [999_000, 500, 900]), modulus_wh=1_000_000), "import")
    assert [f.code for f in rollover] == [FlagCode.REGISTER_ROLLOVER]
    assert plausibility.register_discontinuities("m", steps_of(register(varied(8))), "export") == []


def test_flat_line() -> None:
    (flag,) = plausibility.flat_line("m", steps_of(register([0, 0] + [80_000] * 12 + [5, 7])), 12)
    assert flag.span == Span(T0 + 2 * INTERVAL, T0 + 14 * INTERVAL) and flag.export_cap_w == 0
    assert plausibility.flat_line("m", steps_of(register([0] * 4 + [80_000] * 11 + [0] * 4)), 12) == []
    assert plausibility.flat_line("m", steps_of(register([0] * 20)), 12) == []  # night is not a flat line


def test_frozen_register_while_power_flows() -> None:
    steps = steps_of(register(varied(2) + [0] * 6 + varied(2)))
    power = _samples([500_000.0] * 30)
    (flag,) = plausibility.frozen_register("m", steps, power, min_intervals=4, min_power_w=10_000,
                                           register="export")
    assert flag.span == Span(T0 + 2 * INTERVAL, T0 + 8 * INTERVAL)
    assert flag.evidence_dict()["unmeasured_wh"] == pytest.approx(6 * 125_000)
    quiet = plausibility.frozen_register("m", steps, _samples([0.0] * 30), min_intervals=4,
                                         min_power_w=10_000, register="export")
    assert quiet == []  # a still register at night is normal
    importing = plausibility.frozen_register("m", steps, _samples([-50_000.0] * 30), min_intervals=4,
                                             min_power_w=10_000, register="import")
    assert len(importing) == 1 and importing[0].evidence_dict()["register"] == "import"


def test_impossible_ramp() -> None:
    minute = 60_000
    jump = _samples([0, 0, 1_500_000, 1_400_000, 1_300_000], interval=minute)
    (flag,) = plausibility.impossible_ramp("m", jump, max_w_per_minute=CAPACITY_W)
    assert flag.span == Span(T0 + minute, T0 + 2 * minute) and flag.export_cap_w == 0
    smooth = _samples([0, 300_000, 700_000, 900_000, 1_000_000], interval=minute)
    assert plausibility.impossible_ramp("m", smooth, max_w_per_minute=CAPACITY_W) == []


def test_solar_elevation() -> None:
    t = np.array([NOON + HOUR // 4, T0, T0 + 6 * HOUR], dtype=np.int64)
    noon, midnight, six = plausibility.solar_elevation_deg(*BEIJING, t)
    assert noon == pytest.approx(90 - 39.9 + 22.0, abs=1.0)  # declination on 1 June is about +22°
    assert midnight < -20 and 0 < six < 15


def test_pv_export_at_night() -> None:
    night = steps_of(register([5_000] * 8))  # 00:00 to 02:00 local
    (flag,) = plausibility.pv_export_at_night("m", night, *BEIJING, max_elevation_deg=-3.0, tolerance_w=1_000)
    assert flag.code is FlagCode.PV_EXPORT_AT_NIGHT and flag.evidence_dict()["intervals"] == 8
    day = steps_of(register(varied(8), start=NOON - 2 * HOUR))
    assert plausibility.pv_export_at_night("m", day, *BEIJING, max_elevation_deg=-3.0,
                                           tolerance_w=1_000) == []
    dark_but_still = steps_of(register([100] * 8))  # 400 W of register noise is within tolerance
    assert plausibility.pv_export_at_night("m", dark_but_still, *BEIJING, max_elevation_deg=-3.0,
                                           tolerance_w=1_000) == []


@pytest.mark.parametrize("latitude", [-70.0, 0.0, 39.9, 68.0])
def test_night_export_screen_skips_only_steps_in_sure_daylight(latitude: float) -> None:
    # Within a grid cell the sun's elevation drops by at most SUN_DEG_PER_MS (cells start on whole UTC
    # minutes, so the formulas' step at the new year falls between cells), hence the grid screen never
    # changes a flag: every minute of a week across the new year, against the elevation of every step.
    start = np.int64(1_735_500_000_000)  # late December 2024
    t = start + 60_000 * np.arange(7 * 1440, dtype=np.int64)
    elevation = plausibility.solar_elevation_deg(latitude, 116.4, t)
    cell_start = t - t % plausibility.SUN_GRID_MS
    drop = plausibility.solar_elevation_deg(latitude, 116.4, cell_start) - elevation
    assert np.all(drop <= plausibility.SUN_DEG_PER_MS * (t - cell_start))
    steps = steps_of(RegisterSeries.of(t, 5_000 * np.arange(t.size)))
    flags = plausibility.pv_export_at_night("m", steps, latitude, 116.4, max_elevation_deg=-3.0, tolerance_w=1_000)
    mid = plausibility.solar_elevation_deg(latitude, 116.4, (t[:-1] + t[1:]) // 2)
    night = np.maximum.reduce([elevation[:-1], mid, elevation[1:]]) < -3.0
    edges = np.diff(np.concatenate(([0], night.astype(np.int8), [0])))
    expected = [Span(int(t[a]), int(t[b])) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1),
                                                             strict=True)]
    assert [f.span for f in flags] == expected
    assert expected or latitude == -70.0  # polar summer at -70°: no night to find


def test_pv_against_measured_irradiance() -> None:
    # 500 W/m² on 1 MWp for 15 minutes: reference 125 kWh; PR ≤ 1.2 plus 1 % slack allows 152.5 kWh.
    irradiance = _samples([500.0] * 12)
    clean = steps_of(register([100_000, 110_000, 120_000, 105_000]))
    options = {"pr_max": 1.2, "pr_min": 0.2, "min_irradiance_w_m2": 200.0, "slack_w": 10_000.0}
    assert plausibility.pv_performance("m", clean, irradiance, CAPACITY_W, **options) == []
    crafted = steps_of(register([100_000, 200_000, 10_000, 105_000]))
    high, low = plausibility.pv_performance("m", crafted, irradiance, CAPACITY_W, **options)
    assert (high.code, high.export_cap_w) == (FlagCode.PV_ABOVE_IRRADIANCE, 0.0)
    assert high.evidence_dict()["bound_wh"] == 152_500
    assert (low.code, low.export_cap_w) == (FlagCode.PV_BELOW_IRRADIANCE, None)
    # export while the sensor sees no sun at all
    (dark,) = plausibility.pv_performance("m", steps_of(register([50_000])), _samples([0.0] * 3), CAPACITY_W,
                                          **options)
    assert dark.code is FlagCode.PV_ABOVE_IRRADIANCE


def test_wind_above_power_curve() -> None:
    curve_speed, curve_power = [3.0, 12.0, 25.0], [0.0, 2_000_000.0, 2_000_000.0]
    wind = _samples([8.0] * 12)  # 8 m/s: 1,111 kW, 277.8 kWh per quarter-hour, 305.6 kWh with 10 %
    clean = steps_of(register([250_000, 270_000, 260_000, 240_000]))
    options = {"tolerance": 0.1, "slack_w": 0.0}
    assert plausibility.wind_above_power_curve("m", clean, wind, curve_speed, curve_power, **options) == []
    crafted = steps_of(register([250_000, 400_000, 260_000, 240_000]))
    (flag,) = plausibility.wind_above_power_curve("m", crafted, wind, curve_speed, curve_power, **options)
    assert flag.span == Span(T0 + INTERVAL, T0 + 2 * INTERVAL)
    assert flag.evidence_dict()["bound_wh"] == 305_555


def test_duplicated_patterns_across_devices() -> None:
    pattern = [0, 0, *varied(10, base=60000, step=3700), 0, 0]
    original = steps_of(register(pattern))
    replayed = steps_of(register([0, 0, 0, *pattern[:-1]], start=T0 + DAY))  # another day, shifted
    honest = steps_of(register([0, 0, *varied(10, base=61000, step=3500), 0, 0]))
    flags = plausibility.duplicated_patterns([("a", original, 10_000), ("b", replayed, 10_000),
                                              ("c", honest, 10_000)], window=8)
    matches = sorted((f.device_id, f.evidence_dict()["matched_devices"]) for f in flags)
    assert matches == [("a", "b"), ("b", "a")]
    (flag_a,) = [f for f in flags if f.device_id == "a"]
    assert flag_a.span == Span(T0 + 2 * INTERVAL, T0 + 12 * INTERVAL) and flag_a.export_cap_w == 0
    nights = [(name, steps_of(register([0] * 20)), 10_000.0) for name in "xy"]
    assert plausibility.duplicated_patterns(nights, window=8) == []


def test_duplicated_windows_below_the_minimum_power_are_ignored() -> None:
    low = [(name, steps_of(register(varied(10, base=100, step=7))), 10_000.0) for name in "xy"]
    assert plausibility.duplicated_patterns(low, window=8) == []


@pytest.mark.parametrize("seed", range(5))
def test_candidate_windows_equal_their_definition(seed: int) -> None:
    # The running-count screen and the per-candidate hashes against windows taken one by one.
    rng = np.random.default_rng(seed)
    increments = rng.choice([0, 0, 7, 7, 7, 9, 20_000, 30_000], size=400).astype(np.int64)
    values = np.cumsum(np.concatenate(([0], increments)))
    values[rng.integers(1, 400, size=3)] = 0  # resets
    steps = steps_of(RegisterSeries.of(times(401, interval=60_000 * int(rng.integers(1, 3))), values))
    window, min_power_w = 8, 100_000.0
    got = plausibility._valid_windows(steps, window, min_power_w)
    expected = []
    for start in range(steps.delta_wh.size - window + 1):
        rows, kinds = steps.delta_wh[start:start + window], steps.kind[start:start + window]
        duration = steps.t1[start + window - 1] - steps.t0[start]
        if (rows.min() > 0 and rows.max() > rows.min() and kinds.max() == 0
                and rows.sum() >= min_power_w * duration / HOUR):
            expected.append(start)
    assert got.tolist() == expected and len(expected) > 3
    powers = [pow(1099511628211, window - 1 - j, 2**64) for j in range(window)]
    hashes = [sum(int(d) * p for d, p in zip(steps.delta_wh[s:s + window], powers, strict=True)) % 2**64
              for s in expected]
    assert plausibility._window_hashes(steps.delta_wh, got, window).tolist() == hashes


def test_clock_skew() -> None:
    device_time = times(6)
    arrival = device_time + 2_000
    arrival[2:4] = device_time[2:4] - 5 * 60_000  # device clock five minutes ahead
    (flag,) = plausibility.clock_skew("m", ArrivalSeries(device_time, arrival), max_ahead_ms=60_000,
                                      max_behind_ms=None)
    assert flag.span == Span(int(device_time[2]), int(device_time[3]))
    assert flag.evidence_dict()["largest_ahead_ms"] == 300_000
    buffered = ArrivalSeries(device_time, device_time + 2 * DAY)  # a gateway that was offline for 2 days
    assert plausibility.clock_skew("m", buffered, max_ahead_ms=60_000, max_behind_ms=None) == []
    assert len(plausibility.clock_skew("m", buffered, max_ahead_ms=60_000, max_behind_ms=3_600_000)) == 1


def test_resets_do_not_look_like_anything_else() -> None:
    quality = [0, 0, int(Quality.REGISTER_RESET), 0]
    steps = steps_of(RegisterSeries.of(times(4), [10_000_000, 10_100_000, 100, 200], quality))
    assert plausibility.above_nameplate("m", steps, CAPACITY_W, 0.0) == []


def test_a_device_repeating_itself_is_not_a_duplicate_across_devices() -> None:
    pattern = varied(10, base=60_000, step=3_700)
    repeating = steps_of(register([*pattern, 0, *pattern]))
    other = steps_of(register(varied(21, base=55_000, step=1_300)))
    assert plausibility.duplicated_patterns([("a", repeating, 10_000), ("b", other, 10_000)], window=8) == []
    assert plausibility.duplicated_patterns([], window=8) == []
