"""A simulated PV day for end-to-end tests: a clear-sky plant in Beijing with a weather station."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrv_engine import MeterReadings, PeriodData, RegisterSeries, SampleSeries, Span
from protocol.metrics import Metric
from tests.mrv_engine.builders import DAY, HOUR, INTERVAL, T0

SAMPLE_MS = INTERVAL // 3  # 5-minute instantaneous samples
AUX_W = 2_000.0  # night-time auxiliary consumption


@dataclass(frozen=True)
class PvDay:
    export_increments: np.ndarray
    import_increments: np.ndarray
    data: PeriodData


def _sun(t_ms: np.ndarray) -> np.ndarray:
    """Clear-sky shape between 06:00 and 18:00 local time (T0 is local midnight)."""
    hours = (t_ms - T0) / HOUR
    return np.clip(np.sin(np.pi * (hours - 6) / 12), 0, None)


def pv_day(extra_export_wh: dict[int, int] | None = None, *, capacity_w: float = 1e6) -> PvDay:
    """One day, 96 quarter-hours. Export is 0.8 × capacity × irradiance/1000 (PR 0.8) with a little
    noise, import is the auxiliary consumption when the plant does not produce."""
    rng = np.random.default_rng(7)
    samples_t = T0 + SAMPLE_MS * np.arange(96 * 3, dtype=np.int64)
    irradiance = 1000.0 * _sun(samples_t)
    power = 0.8 * capacity_w * irradiance / 1000.0
    mean_power = power.reshape(96, 3).mean(axis=1)
    export = np.floor(mean_power * 0.25).astype(np.int64)
    export[export > 0] += rng.integers(-50, 50, size=int((export > 0).sum()))
    for index, extra in (extra_export_wh or {}).items():
        export[index] += extra
    importing = mean_power == 0
    import_ = np.where(importing, np.floor(AUX_W * 0.25).astype(np.int64) + rng.integers(0, 20, 96), 0)
    times = T0 + INTERVAL * np.arange(97, dtype=np.int64)
    meter = MeterReadings(
        RegisterSeries.of(times, 7_000_000 + np.concatenate(([0], np.cumsum(export)))),
        RegisterSeries.of(times, 30_000 + np.concatenate(([0], np.cumsum(import_)))))
    data = PeriodData(
        period=Span(T0, T0 + DAY),
        meters={"M1": meter},
        samples={("meter-1", Metric.ACTIVE_POWER_W): SampleSeries(samples_t, power - AUX_W * (power == 0)),
                 ("wx-1", Metric.IRRADIANCE_W_M2): SampleSeries(samples_t, irradiance)},
    )
    return PvDay(export, import_, data)
