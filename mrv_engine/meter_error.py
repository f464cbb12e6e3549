"""Meter error corrections over time, from a meter's accuracy class and calibration records (CCER rule):

| meter condition                            | export multiplied by | import multiplied by |
| calibrated on time, error found out of spec | 1 − |actual error|   | 1 + |actual error|   |
| uncalibrated                               | 1 − max permissible  | 1 + max permissible  |
| calibration overdue                        | as uncalibrated, for the overdue span only  |

A calibration test finds the error the meter had *since the previous test*, so a record's found error
governs the span that ends at its test. A record's validity ends at the end of its valid-until day; a test
takes effect at the end of its day (the test day itself keeps the earlier status). Where two conditions
meet (overdue and an out-of-spec finding) the larger error applies. A step of energy that overlaps
several segments takes the largest error among them: energy is never split by interpolation.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from mrv_engine.series import I64

_MIN = np.iinfo(np.int64).min
_MAX = np.iinfo(np.int64).max


class ErrorCause(enum.StrEnum):
    OUT_OF_SPEC = "out_of_spec"
    UNCALIBRATED = "uncalibrated"
    OVERDUE = "calibration_overdue"


@dataclass(frozen=True)
class Calibration:
    """A calibration test: when it took effect, until when it is valid (ms), |error found| and the
    certificate it is recorded in."""

    effective_ms: int
    valid_until_ms: int
    error: Fraction
    source: str = ""

    def __post_init__(self) -> None:
        if self.valid_until_ms < self.effective_ms:
            raise ValueError("a calibration cannot expire before it takes effect")


@dataclass(frozen=True)
class ErrorSegment:
    start_ms: int
    end_ms: int
    error: Fraction  # |relative error| applied to the energy in the segment
    cause: ErrorCause
    source: str  # the record(s) that put the segment in its condition


@dataclass(frozen=True)
class ErrorTimeline:
    """The spans in which a meter's energy is corrected; outside them no correction applies."""

    segments: tuple[ErrorSegment, ...]

    @classmethod
    def from_calibrations(cls, calibrations: Sequence[Calibration], max_permissible: Fraction
                          ) -> ErrorTimeline:
        tests = sorted(calibrations, key=lambda c: c.effective_ms)
        if not tests:
            return cls((ErrorSegment(_MIN, _MAX, max_permissible, ErrorCause.UNCALIBRATED,
                                     "no calibration record"),))

        def found(test: Calibration) -> Fraction:
            return test.error if test.error > max_permissible else Fraction(0)

        segments = [ErrorSegment(_MIN, tests[0].effective_ms, max(max_permissible, found(tests[0])),
                                 ErrorCause.UNCALIBRATED, f"before {tests[0].source}")]
        for previous, test in itertools.pairwise(tests):
            covered_end = min(previous.valid_until_ms, test.effective_ms)
            finding = f"{test.source} found {float(test.error * 100):g} %"
            if found(test):
                segments.append(ErrorSegment(previous.effective_ms, covered_end, found(test),
                                             ErrorCause.OUT_OF_SPEC, finding))
            if previous.valid_until_ms < test.effective_ms:
                segments.append(ErrorSegment(previous.valid_until_ms, test.effective_ms,
                                             max(max_permissible, found(test)), ErrorCause.OVERDUE,
                                             f"{previous.source} expired; {finding}"))
        segments.append(ErrorSegment(tests[-1].valid_until_ms, _MAX, max_permissible, ErrorCause.OVERDUE,
                                     f"{tests[-1].source} expired"))
        return cls(tuple(s for s in segments if s.error > 0 and s.end_ms > s.start_ms))

    def governing_segment(self, t0: I64, t1: I64) -> NDArray[np.int64]:
        """Per step [t0, t1]: index of the segment with the largest error it overlaps, or -1."""
        best = np.full(t0.size, -1, dtype=np.int64)
        # Ascending error, so that a larger error overwrites a smaller one where segments meet.
        for i in sorted(range(len(self.segments)), key=lambda i: self.segments[i].error):
            segment = self.segments[i]
            best[(t0 < segment.end_ms) & (t1 > segment.start_ms)] = i
        return best
