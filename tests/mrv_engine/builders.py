"""Test builders: a valid project configuration as a dict, and register series on a 15-minute grid."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from mrv_engine.config import ProjectConfig, load_project_config
from mrv_engine.meter_error import ErrorTimeline
from mrv_engine.net_generation import MeterRole, MeterSpec
from mrv_engine.registers import RegisterSteps, register_steps
from mrv_engine.series import RegisterSeries
from mrv_engine.timespan import Span, day_start_ms

OFFSET = 480  # China Standard Time
T0 = day_start_ms(dt.date(2024, 6, 1), OFFSET)
INTERVAL = 900_000
HOUR = 3_600_000
DAY = 86_400_000


def project_dict(**overrides: Any) -> dict[str, Any]:
    """A PV project on ACM0002 with one main meter, calibrated in spec; `overrides` replace top-level keys."""
    base: dict[str, Any] = {
        "project_id": "pv-demo",
        "technology": "solar_pv",
        "nameplate_capacity_mw": {"value": 1.0, "source": "grid connection agreement §2"},
        "utc_offset_minutes": OFFSET,
        "crediting_period": {"start": dt.date(2024, 1, 1), "end": dt.date(2030, 12, 31)},
        "methodology": {"id": "ACM0002"},
        "grid_ef": {"kind": "combined_margin",
                    "ef_om": {"value": 0.8, "source": "PDD §B.6.3"},
                    "ef_bm": {"value": 0.4, "source": "PDD §B.6.3"}},
        "meters": [main_meter()],
        "claims": {"declared": ["CDM"]},
        "monitoring": {"interval_s": 900},
        "plausibility": {"flat_line_intervals": None},
    }
    base.update(copy.deepcopy(overrides))
    return base


def main_meter(**overrides: Any) -> dict[str, Any]:
    meter: dict[str, Any] = {
        "id": "M1", "role": "main", "device_id": "meter-1", "accuracy_class": "0.2S",
        "calibrations": [{"date": dt.date(2023, 12, 1), "error_pct": 0.05,
                          "valid_until": dt.date(2025, 11, 30), "source": "cert 2023-117"}],
    }
    meter.update(overrides)
    return meter


def config(**overrides: Any) -> ProjectConfig:
    return load_project_config(project_dict(**overrides))


def times(count: int, start: int = T0, interval: int = INTERVAL) -> np.ndarray:
    return start + interval * np.arange(count, dtype=np.int64)


def cumulative(increments: Sequence[int], start_value: int = 0) -> np.ndarray:
    return start_value + np.concatenate(([0], np.cumsum(np.asarray(increments, dtype=np.int64))))


def register(increments: Sequence[int], start: int = T0, start_value: int = 0,
             interval: int = INTERVAL) -> RegisterSeries:
    """A register read every `interval` from `start`, rising by `increments`."""
    return RegisterSeries.of(times(len(increments) + 1, start, interval), cumulative(increments, start_value))


def steps_of(series: RegisterSeries, max_power_w: float = 1e6, modulus_wh: int | None = None
             ) -> RegisterSteps:
    return register_steps(series, max_power_w=max_power_w, modulus_wh=modulus_wh)


def spec(timeline: ErrorTimeline | None = None, *, max_power_w: float = 1e6, role: MeterRole = MeterRole.MAIN,
         meter_id: str = "M1", device_id: str = "meter-1", checks: str | None = None,
         max_permissible: Fraction = Fraction(2, 1000)) -> MeterSpec:
    """A meter spec for the net generation core; no corrections unless `timeline` says so."""
    return MeterSpec(meter_id, device_id, role, max_power_w, max_permissible,
                     timeline if timeline is not None else ErrorTimeline(()), True, checks)


def varied(count: int, base: int = 100_000, step: int = 1_000) -> list[int]:
    """Distinct increments (no flat lines, no duplicates between devices built with other bases)."""
    return [base + step * i for i in range(count)]


def period(hours: float = 4, start: int = T0) -> Span:
    return Span(start, start + int(hours * HOUR))
