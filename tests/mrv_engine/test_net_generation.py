"""Net generation by hand: register differences, boundary rule, bounds, corrections and cross-checks."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest

from mrv_engine.meter_error import Calibration, ErrorTimeline
from mrv_engine.net_generation import MeterEnergy, MeterRole, MeterSpec, Settlement, combine, meter_energy
from mrv_engine.results import AdjustmentCode, Flag, FlagCode
from mrv_engine.series import RegisterSeries
from mrv_engine.timespan import Span
from protocol.metrics import Quality
from tests.mrv_engine.builders import DAY, HOUR, INTERVAL, T0, period, register, spec, steps_of, times, varied

MINUTE = 60_000
ONE_HOUR = Span(T0, T0 + HOUR)


def _energy(export: RegisterSeries, import_: RegisterSeries, span: Span, *, meter: MeterSpec | None = None,
            caps: Sequence[Flag] = ()) -> MeterEnergy:
    meter = meter or spec()
    return meter_energy(meter, steps_of(export, meter.max_power_w), steps_of(import_, meter.max_power_w),
                        span, interval_ms=INTERVAL, gap_ms=2 * INTERVAL, caps=caps)


def _reconciles(energy: MeterEnergy) -> bool:
    return energy.net_wh == energy.export_wh - energy.import_wh + sum(a.amount_wh for a in energy.adjustments)


def test_net_export_with_import() -> None:
    # 16 quarter-hours: export 100.0 .. 115.0 kWh, import 10 .. 25 Wh.
    energy = _energy(register(varied(16)), register([10 + i for i in range(16)]), period(4))
    assert energy.export_wh == 16 * 100_000 + 1_000 * 120 == 1_720_000
    assert energy.import_wh == 16 * 10 + 120 == 280
    assert energy.net_wh == 1_719_720
    assert energy.adjustments == () and energy.flags == ()
    assert (energy.intervals_present, energy.intervals_expected) == (16, 16)


def _offset_readings(values: list[int]) -> RegisterSeries:
    # Readings at -10, 5, 20, 35, 50 and 65 minutes around the hour [T0, T0 + 1 h].
    return RegisterSeries.of(T0 + MINUTE * np.array([-10, 5, 20, 35, 50, 65]), values)


def test_boundary_rule_export_inside_only_import_bracketed() -> None:
    export = _offset_readings([0, 1_000, 3_000, 6_000, 10_000, 15_000])
    import_ = _offset_readings([0, 10, 30, 60, 100, 150])
    energy = _energy(export, import_, ONE_HOUR)
    assert energy.export_wh == 2_000 + 3_000 + 4_000  # the steps 5-20, 20-35, 35-50 minutes
    assert energy.import_wh == 20 + 30 + 40
    (boundary,) = energy.adjustments
    assert (boundary.code, boundary.amount_wh) == (AdjustmentCode.BOUNDARY_IMPORT, -(10 + 50))
    assert energy.net_wh == 9_000 - 150
    (flag,) = energy.flags
    assert flag.code is FlagCode.BOUNDARY_UNCOVERED
    assert flag.evidence_dict() == {"register": "export", "uncovered_ms": 15 * MINUTE, "uncounted_wh": 6_000}
    assert _reconciles(energy)


def test_boundary_import_never_exceeds_max_power_over_the_time_inside() -> None:
    # At 60 W the 5 and 10 minutes inside the period can hold at most 5 and 10 Wh of import.
    export = _offset_readings([0, 1_000, 3_000, 6_000, 10_000, 15_000])
    import_ = _offset_readings([0, 10, 30, 60, 100, 150])
    energy = _energy(export, import_, ONE_HOUR, meter=spec(max_power_w=60))
    assert [a.amount_wh for a in energy.adjustments] == [-(5 + 10)]
    assert energy.net_wh == 9_000 - 90 - 15


def test_time_without_import_readings_is_charged_at_max_power() -> None:
    export = _offset_readings([0, 1_000, 3_000, 6_000, 10_000, 15_000])
    # The import register reports only from 20 minutes on: 20 minutes at 1 MW is 333,333.3 Wh.
    import_ = RegisterSeries.of(T0 + MINUTE * np.array([20, 35, 50, 65]), [30, 60, 100, 150])
    energy = _energy(export, import_, ONE_HOUR)
    assert energy.import_wh == 30 + 40
    assert [(a.code, a.cause, a.amount_wh) for a in energy.adjustments] == [
        (AdjustmentCode.BOUNDARY_IMPORT, "boundary", -50),
        (AdjustmentCode.UNMETERED_IMPORT, "uncovered", -(333_384 - 50)),  # ceil(50 + 333,333.3) - 50
    ]
    assert energy.net_wh == 9_000 - 70 - 333_384
    assert _reconciles(energy)


def test_import_across_a_reset_is_bounded_by_max_power() -> None:
    reset = int(Quality.REGISTER_RESET)
    import_ = RegisterSeries.of(times(5), [100, 120, 5, 25, 45], [0, 0, reset, 0, 0])
    energy = _energy(register([1_000, 2_000, 3_000, 4_000]), import_, ONE_HOUR, meter=spec(max_power_w=1_000))
    assert energy.import_wh == 20 + 20 + 20
    (adjustment,) = energy.adjustments
    assert (adjustment.cause, adjustment.amount_wh) == ("register_reset", -250)  # 1 kW for 15 minutes
    assert energy.net_wh == 10_000 - 60 - 250


def _calibrated(found: Fraction) -> ErrorTimeline:
    # Verified 100 days before the period; the next yearly test, after it, found `found`.
    tests = [Calibration(T0 - 100 * DAY, T0 + 265 * DAY, Fraction(5, 10_000)),
             Calibration(T0 + 200 * DAY, T0 + 565 * DAY, found)]
    return ErrorTimeline.from_calibrations(tests, Fraction(2, 1000))


def test_cdm_example_out_of_spec_error_of_0_21_percent() -> None:
    energy = _energy(register([62_500] * 16), register([625] * 16), period(4),
                     meter=spec(_calibrated(Fraction(21, 10_000))))
    assert (energy.export_wh, energy.import_wh) == (1_000_000, 10_000)
    assert [(a.register, a.cause, a.amount_wh) for a in energy.adjustments] == [
        ("export", "out_of_spec", -2_100), ("import", "out_of_spec", -21)]
    assert energy.export_credited_wh == 997_900  # × 0.9979
    assert energy.import_charged_wh == 10_021  # × 1.0021
    assert energy.net_wh == 987_879


def test_error_found_within_spec_is_not_corrected() -> None:
    energy = _energy(register([62_500] * 16), register([625] * 16), period(4),
                     meter=spec(_calibrated(Fraction(19, 10_000))))
    assert energy.adjustments == () and energy.net_wh == 990_000


def test_uncalibrated_meter_is_corrected_by_its_class() -> None:
    energy = _energy(register([62_500] * 16), register([625] * 16), period(4),
                     meter=spec(ErrorTimeline.from_calibrations([], Fraction(2, 1000))))
    assert (energy.export_credited_wh, energy.import_charged_wh) == (998_000, 10_020)


def test_overdue_calibration_corrects_the_overdue_span_only() -> None:
    # Valid until two hours into the period, retested in spec a month later.
    tests = [Calibration(T0 - 300 * DAY, T0 + 2 * HOUR, Fraction(0)),
             Calibration(T0 + 30 * DAY, T0 + 400 * DAY, Fraction(1, 10_000))]
    timeline = ErrorTimeline.from_calibrations(tests, Fraction(2, 1000))
    energy = _energy(register(varied(16)), register([10 + i for i in range(16)]), period(4),
                     meter=spec(timeline))
    late_export = sum(varied(16)[8:])  # the last 8 quarter-hours: 892,000 Wh
    late_import = sum(10 + i for i in range(8, 16))  # 172 Wh
    assert [(a.cause, a.amount_wh) for a in energy.adjustments] == [
        ("calibration_overdue", -1_784),  # ceil(892,000 × 0.002)
        ("calibration_overdue", -1),  # ceil(172 × 0.002)
    ]
    assert (late_export, late_import) == (892_000, 172)
    assert energy.net_wh == 1_720_000 - 1_784 - 281


def test_flags_exclude_or_bound_the_export_they_touch() -> None:
    increments = varied(16)
    span_2_3 = Span(T0 + 2 * INTERVAL, T0 + 4 * INTERVAL)  # steps 2 and 3
    excluded = Flag.make(FlagCode.PV_EXPORT_AT_NIGHT, "meter-1", span_2_3, export_cap_w=0.0)
    # 200 kW over 15 minutes is 50 kWh
    bounded = Flag.make(FlagCode.ABOVE_NAMEPLATE, "meter-1", Span(T0 + 5 * INTERVAL, T0 + 6 * INTERVAL),
                        export_cap_w=200_000.0)
    energy = _energy(register(increments), register([0] * 16), period(4), caps=[excluded, bounded])
    assert [(a.cause, a.amount_wh) for a in energy.adjustments] == [
        ("pv_export_at_night", -(increments[2] + increments[3])),
        ("above_nameplate", -(increments[5] - 50_000)),
    ]
    assert energy.net_wh == sum(increments) - increments[2] - increments[3] - increments[5] + 50_000


def test_gaps_keep_their_energy_and_are_flagged() -> None:
    kept = [0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15, 16]  # readings 4..8 lost: one 90-minute step
    values = np.concatenate(([0], np.cumsum(varied(16))))
    series = RegisterSeries.of(times(17)[kept], values[kept])
    energy = _energy(series, register([0] * 16), period(4))
    assert energy.export_wh == sum(varied(16))
    (gap,) = [f for f in energy.flags if f.code is FlagCode.GAP]
    assert gap.evidence_dict() == {"register": "export", "duration_ms": 6 * INTERVAL,
                                   "energy_kept_wh": sum(varied(16)[3:9])}
    assert (energy.intervals_present, energy.intervals_expected) == (11, 16)


def test_unusable_readings_are_reported() -> None:
    quality = [0] * 17
    quality[3] = int(Quality.ESTIMATED)
    series = RegisterSeries.of(times(17), np.concatenate(([0], np.cumsum(varied(16)))), quality)
    energy = _energy(series, register([0] * 16), period(4))
    assert energy.export_wh == sum(varied(16))
    (flag,) = [f for f in energy.flags if f.code is FlagCode.UNUSABLE_READINGS]
    assert flag.evidence_dict() == {"register": "export", "estimated": 1}


def _pair(main_export: int, check_export: int) -> list[MeterEnergy]:
    main = _energy(register([main_export // 4] * 4), register([0] * 4), ONE_HOUR,
                   meter=spec(max_permissible=Fraction(2, 1000)))
    check = _energy(register([check_export // 4] * 4), register([0] * 4), ONE_HOUR,
                    meter=spec(meter_id="C1", device_id="meter-2", role=MeterRole.CHECK, checks="M1",
                               max_permissible=Fraction(5, 1000)))
    return [main, check]


def test_check_meter_within_accuracy_classes_leaves_the_main_meter() -> None:
    # tolerance (0.2 % + 0.5 %) × 1,000,000 Wh = 7,000 Wh
    generation = combine(_pair(1_000_000, 993_000), ONE_HOUR)
    assert generation.net_wh == 1_000_000 and generation.flags == ()


def test_check_meter_disagreement_flags_and_uses_the_lower_net() -> None:
    generation = combine(_pair(1_000_000, 992_996), ONE_HOUR)
    assert generation.net_wh == 992_996
    (flag,) = generation.flags
    assert flag.code is FlagCode.CHECK_METER_DISAGREEMENT
    assert flag.evidence_dict()["tolerance_wh"] == 7_000
    assert flag.evidence_dict()["recalibration_due_ms"] == ONE_HOUR.end_ms + 30 * DAY
    (adjustment,) = generation.adjustments
    assert (adjustment.code, adjustment.amount_wh) == (AdjustmentCode.CHECK_METER, -7_004)
    # a higher check meter is flagged but never raises the net
    generation = combine(_pair(1_000_000, 1_020_000), ONE_HOUR)
    assert generation.net_wh == 1_000_000 and len(generation.flags) == 1 and generation.adjustments == ()


@pytest.mark.parametrize("invoice, tolerance, expected", [
    (Settlement(1.0), Fraction(0), 1_000_000),  # metered 1.01 MWh exceeds the invoice: invoice used
    (Settlement(1.0), Fraction(2, 100), 1_010_000),  # within 2 %: metered used
    (Settlement(1.1), Fraction(0), 1_010_000),  # invoice above metered: metered used
    (Settlement(1.1, import_mwh=0.05), Fraction(0), 1_010_000 - 50_000),  # invoiced import is higher
])
def test_settlement_cross_check(invoice: Settlement, tolerance: Fraction, expected: int) -> None:
    meters = [_energy(register([252_500] * 4), register([0] * 4), ONE_HOUR)]
    generation = combine(meters, ONE_HOUR, settlement=invoice, settlement_tolerance=tolerance)
    assert generation.net_wh == expected
    flagged = any(f.code is FlagCode.SETTLEMENT_MISMATCH for f in generation.flags)
    assert flagged == (generation.net_wh < 1_010_000)
    assert generation.net_wh == 1_010_000 + sum(a.amount_wh for a in generation.adjustments)


def test_a_project_needs_a_main_meter() -> None:
    check = _pair(4, 4)[1]
    with pytest.raises(ValueError, match="main meter"):
        combine([check], ONE_HOUR)
