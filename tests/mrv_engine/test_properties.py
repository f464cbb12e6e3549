"""Conservativeness as properties: missing data, gaps and flags can only lower what is credited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrv_engine import (
    Claim,
    Flag,
    FlagCode,
    MeterReadings,
    PeriodData,
    PeriodResult,
    RegisterSeries,
    Scheme,
    Settlement,
    Span,
    assess_period,
)
from mrv_engine.meter_error import ErrorTimeline
from mrv_engine.net_generation import meter_energy
from protocol.metrics import Quality
from tests.mrv_engine.builders import DAY, HOUR, INTERVAL, T0, config, main_meter, spec, steps_of

MINUTE = 60_000
CAPACITY_W = 1e6
# Two hours either side of local midnight ending 1 June: the calibration below expires at that midnight,
# so the second half of the period is corrected as overdue.
PERIOD = Span(T0 + DAY - 2 * HOUR, T0 + DAY + 2 * HOUR)
PROJECT = config(meters=[main_meter(calibrations=[
    {"date": dt.date(2023, 6, 1), "error_pct": 0.0, "valid_until": dt.date(2024, 6, 1), "source": "cert 1"},
    {"date": dt.date(2024, 7, 1), "error_pct": 0.1, "valid_until": dt.date(2025, 6, 30), "source": "cert 2"},
])])
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Register:
    times: np.ndarray
    values: np.ndarray
    quality: np.ndarray

    def series(self, keep: np.ndarray | None = None) -> RegisterSeries:
        mask = np.ones(self.times.size, dtype=bool) if keep is None else keep
        return RegisterSeries(self.times[mask], self.values[mask], self.quality[mask])


@st.composite
def registers(draw: st.DrawFn, *, physical: bool = True) -> Register:
    """Readings at random minutes around the period. Physical data never exceeds the capacity in an
    interval; otherwise increments and resets are arbitrary."""
    minutes = sorted(draw(st.sets(st.integers(-180, 420), max_size=30)))
    start = PERIOD.start_ms
    times = start + MINUTE * np.asarray(minutes, dtype=np.int64)
    values, quality, value = [], [], draw(st.integers(0, 10**9))
    for i in range(len(minutes)):
        flag = 0
        if i:
            limit = int(CAPACITY_W * (times[i] - times[i - 1]) / HOUR)
            if not physical and draw(st.booleans()) and draw(st.booleans()):
                value, flag = draw(st.integers(0, 10**6)), int(Quality.REGISTER_RESET)
            else:
                value += draw(st.integers(0, limit if physical else 3 * limit))
        values.append(value)
        quality.append(flag)
    return Register(times, np.asarray(values, dtype=np.int64), np.asarray(quality, dtype=np.int64))


def _assess(export: RegisterSeries, import_: RegisterSeries) -> PeriodResult:
    return assess_period(PROJECT, PeriodData(period=PERIOD, meters={"M1": MeterReadings(export, import_)}))


def _keep(draw: Callable[[st.SearchStrategy[list[bool]]], list[bool]], register: Register) -> np.ndarray:
    return np.asarray(draw(st.lists(st.booleans(), min_size=register.times.size,
                                    max_size=register.times.size)), dtype=bool)


@SETTINGS
@given(registers(), registers(), st.data())
def test_removing_readings_never_raises_reductions(export: Register, import_: Register, data: st.DataObject
                                                  ) -> None:
    full = _assess(export.series(), import_.series())
    thinned = _assess(export.series(_keep(data.draw, export)), import_.series(_keep(data.draw, import_)))
    assert thinned.net_generation_wh <= full.net_generation_wh
    assert thinned.reductions_kg <= full.reductions_kg


@SETTINGS
@given(registers(), registers(), st.integers(0, 29), st.integers(1, 30))
def test_gaps_never_inflate_net_generation(export: Register, import_: Register, first: int, length: int
                                           ) -> None:
    full = _assess(export.series(), import_.series())
    keep_export = np.ones(export.times.size, dtype=bool)
    keep_export[first:first + length] = False
    keep_import = np.ones(import_.times.size, dtype=bool)
    keep_import[first:first + length] = False
    gapped = _assess(export.series(keep_export), import_.series(keep_import))
    assert gapped.net_generation_wh <= full.net_generation_wh


@SETTINGS
@given(registers(physical=False), st.lists(st.tuples(st.integers(-60, 300), st.integers(0, 120)), max_size=4))
def test_flagged_energy_is_excluded(export: Register, spans: list[tuple[int, int]]) -> None:
    steps = steps_of(export.series())
    flags = [Flag.make(FlagCode.CLOCK_SKEW, "meter-1",
                       Span(PERIOD.start_ms + a * MINUTE, PERIOD.start_ms + (a + b) * MINUTE),
                       export_cap_w=0.0)
             for a, b in spans]
    no_import = steps_of(RegisterSeries.of(export.times, np.zeros(export.times.size, dtype=np.int64)))
    meter = spec(ErrorTimeline(()))
    plain = meter_energy(meter, steps, no_import, PERIOD, interval_ms=INTERVAL, gap_ms=2 * INTERVAL)
    flagged = meter_energy(meter, steps, no_import, PERIOD, interval_ms=INTERVAL, gap_ms=2 * INTERVAL,
                           caps=flags)
    inside = (steps.t0 >= PERIOD.start_ms) & (steps.t1 <= PERIOD.end_ms) & steps.counted
    touched = np.zeros(steps.t0.size, dtype=bool)
    for flag in flags:
        s = flag.span
        touched |= ((steps.t0 < s.end_ms) & (steps.t1 > s.start_ms)) if s.end_ms > s.start_ms else (
            (steps.t0 <= s.start_ms) & (steps.t1 >= s.start_ms))
    excluded = int(steps.delta_wh[inside & touched].sum())
    assert flagged.export_credited_wh == plain.export_credited_wh - excluded


@SETTINGS
@given(registers(physical=False), registers(physical=False),
       st.one_of(st.none(), st.floats(0, 2)), st.lists(st.integers(0, 3), max_size=2))
def test_reductions_are_never_inflated(export: Register, import_: Register, invoice: float | None,
                                       certificates: list[int]) -> None:
    project = PROJECT.model_copy(update={"claims": PROJECT.claims.model_copy(update={
        "declared": (Scheme.CDM, Scheme.GEC), "policy": "deduct"})})
    result = assess_period(project, PeriodData(
        period=PERIOD, meters={"M1": MeterReadings(export.series(), import_.series())},
        settlement=None if invoice is None else Settlement(invoice),
        claims=tuple(Claim(Scheme.GEC, PERIOD, mwh) for mwh in certificates)))
    assert all(a.amount_wh <= 0 for a in result.adjustments)
    assert result.net_generation_wh <= result.export_wh - result.import_wh
    assert result.net_generation_wh == result.export_wh - result.import_wh + sum(
        a.amount_wh for a in result.adjustments)
    # 0.7 tCO2/MWh is 7 kg per 10 kWh; baseline rounds down, nothing else adds
    assert result.baseline_kg == result.eg_pj_wh * 7 // 10_000
    assert result.project_kg >= 0 and result.leakage_kg >= 0
    assert result.reductions_kg <= result.baseline_kg
    assert 0 <= result.issuable_units * 1000 <= max(result.reductions_kg, 0)
