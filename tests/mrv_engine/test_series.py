"""Input series are validated when built; spans know how they relate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mrv_engine import ArrivalSeries, RegisterSeries, SampleSeries, Span


@pytest.mark.parametrize("times, values, message", [
    ([1, 1], [0, 1], "strictly increasing"),
    ([2, 1], [0, 1], "strictly increasing"),
    ([1, 2], [0], "same length"),
    ([1, 2], [0, -1], "never negative"),
    ([1.5, 2], [0, 1], "integers"),
    ([[1, 2]], [[0, 1]], "one-dimensional"),
])
def test_register_series_validation(times: list[Any], values: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RegisterSeries.of(times, values)


def test_sample_and_arrival_series_validation() -> None:
    with pytest.raises(ValueError, match="finite"):
        SampleSeries(np.array([1, 2]), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="as long as"):
        SampleSeries(np.array([1, 2]), np.array([1.0]))
    with pytest.raises(ValueError, match="same length"):
        ArrivalSeries(np.array([1, 2]), np.array([1]))


def test_span_relations() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        Span(2, 1)
    day = Span(0, 10)
    assert day.contains(Span(0, 10)) and not day.contains(Span(5, 11))
    assert day.overlaps(Span(9, 20)) and not day.overlaps(Span(10, 20))  # touching is not overlapping
    assert day.overlaps(Span(10, 10)) and Span(0, 0).overlaps(day) and not day.overlaps(Span(11, 11))
