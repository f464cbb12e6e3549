"""Meter error timelines from calibration records (CCER correction table)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from mrv_engine.meter_error import Calibration, ErrorCause, ErrorTimeline
from tests.mrv_engine.builders import DAY

MPE = Fraction(2, 1000)


def _segments(timeline: ErrorTimeline) -> list[tuple[int, int, Fraction, ErrorCause]]:
    return [(s.start_ms, s.end_ms, s.error, s.cause) for s in timeline.segments]


def test_never_calibrated_meter_is_corrected_by_its_class_everywhere() -> None:
    (segment,) = ErrorTimeline.from_calibrations([], MPE).segments
    assert (segment.error, segment.cause) == (MPE, ErrorCause.UNCALIBRATED)


def test_out_of_spec_finding_governs_the_span_before_the_test() -> None:
    tests = [Calibration(0, 400 * DAY, Fraction(5, 10000)),
             Calibration(365 * DAY, 730 * DAY, Fraction(21, 10000))]
    segments = _segments(ErrorTimeline.from_calibrations(tests, MPE))
    assert segments[0][1:] == (0, MPE, ErrorCause.UNCALIBRATED)  # before the first test
    assert segments[1] == (0, 365 * DAY, Fraction(21, 10000), ErrorCause.OUT_OF_SPEC)
    assert segments[2] == (730 * DAY, segments[2][1], MPE, ErrorCause.OVERDUE)  # after the last validity
    assert len(segments) == 3


def test_in_spec_finding_needs_no_correction() -> None:
    tests = [Calibration(0, 400 * DAY, Fraction(1, 10000)),
             Calibration(365 * DAY, 730 * DAY, Fraction(1, 1000))]
    assert len(ErrorTimeline.from_calibrations(tests, MPE).segments) == 2  # before and after only


def test_overdue_span_only_is_corrected_as_uncalibrated() -> None:
    tests = [Calibration(0, 100 * DAY, Fraction(0)), Calibration(130 * DAY, 500 * DAY, Fraction(1, 10000))]
    segments = _segments(ErrorTimeline.from_calibrations(tests, MPE))
    assert (100 * DAY, 130 * DAY, MPE, ErrorCause.OVERDUE) in segments
    # an overdue span whose closing test also found the meter out of spec takes the larger error
    tests[1] = Calibration(130 * DAY, 500 * DAY, Fraction(5, 1000))
    segments = _segments(ErrorTimeline.from_calibrations(tests, MPE))
    assert (0, 100 * DAY, Fraction(5, 1000), ErrorCause.OUT_OF_SPEC) in segments
    assert (100 * DAY, 130 * DAY, Fraction(5, 1000), ErrorCause.OVERDUE) in segments


def test_a_step_takes_the_largest_error_it_overlaps() -> None:
    tests = [Calibration(0, 100 * DAY, Fraction(0)), Calibration(130 * DAY, 500 * DAY, Fraction(0))]
    timeline = ErrorTimeline.from_calibrations(tests, MPE)
    t0 = np.array([10 * DAY, 99 * DAY, 100 * DAY, 129 * DAY, 131 * DAY], dtype=np.int64)
    t1 = t0 + DAY // 2 * 3
    governing = timeline.governing_segment(t0, t1)
    errors = [timeline.segments[i].error if i >= 0 else 0 for i in governing]
    assert errors == [0, MPE, MPE, MPE, 0]
