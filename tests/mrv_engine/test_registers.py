"""Register steps: differences, rollover by register width, resets and replacements, unusable readings."""

from __future__ import annotations

import numpy as np

from mrv_engine.registers import RegisterSteps, StepKind, register_steps
from mrv_engine.series import RegisterSeries
from protocol.metrics import Quality
from tests.mrv_engine.builders import INTERVAL, times

MODULUS = 1_000_000  # a six-digit Wh register


def _steps(values: list[int], quality: list[int] | None = None, modulus: int | None = MODULUS
           ) -> RegisterSteps:
    series = RegisterSeries.of(times(len(values)), values, quality)
    # 1 MW for 15 minutes is at most 250 kWh per step.
    return register_steps(series, max_power_w=1e6, modulus_wh=modulus)


def test_differences_of_a_rising_register() -> None:
    steps = _steps([10, 110, 310, 310])
    assert steps.delta_wh.tolist() == [100, 200, 0]
    assert steps.kind.tolist() == [StepKind.NORMAL] * 3
    assert (steps.t1 - steps.t0).tolist() == [INTERVAL] * 3


def test_rollover_is_a_plausible_wrap() -> None:
    steps = _steps([999_900, 50, 150])
    assert steps.kind.tolist() == [StepKind.ROLLOVER, StepKind.NORMAL]
    assert steps.delta_wh.tolist() == [150, 100]


def test_decrease_without_a_plausible_wrap_is_a_reset() -> None:
    # Wrapping 300_000 -> 10 would mean 700 kWh in 15 minutes from a 1 MW plant (at most 250 kWh, and a
    # wrap is accepted up to twice that): a replacement instead.
    assert _steps([300_000, 10, 110]).kind.tolist() == [StepKind.RESET, StepKind.NORMAL]
    # Without a register width every decrease is a reset.
    assert _steps([999_900, 50], modulus=None).kind.tolist() == [StepKind.RESET]
    assert _steps([999_900, 50], modulus=None).delta_wh.tolist() == [0]


def test_flagged_reset_starts_a_new_segment_even_when_rising() -> None:
    steps = _steps([100, 5_000, 5_100], [0, int(Quality.REGISTER_RESET), 0])
    assert steps.kind.tolist() == [StepKind.RESET, StepKind.NORMAL]
    assert steps.delta_wh.tolist() == [0, 100]


def test_unusable_readings_are_dropped_and_their_energy_kept() -> None:
    quality = [0, int(Quality.SOURCE_ERROR), int(Quality.ESTIMATED | Quality.CLOCK_UNSYNCED), 0,
               int(Quality.SIMULATED)]
    steps = _steps([0, 100, 250, 400, 900], quality)
    assert steps.times_ms.tolist() == times(5)[[0, 3]].tolist()
    assert steps.delta_wh.tolist() == [400]
    assert dict(steps.dropped) == {"source_error": 1, "clock_unsynced": 1, "estimated": 1, "simulated": 1}


def test_a_reset_flag_on_a_dropped_reading_moves_to_the_next_usable_one() -> None:
    quality = [0, int(Quality.REGISTER_RESET | Quality.SOURCE_ERROR), 0]
    steps = _steps([100, 0, 150], quality)
    assert steps.kind.tolist() == [StepKind.RESET]


def test_empty_and_single_reading_series() -> None:
    assert _steps([]).delta_wh.size == 0
    assert _steps([5]).delta_wh.size == 0
    assert np.array_equal(_steps([5]).times_ms, times(1))
