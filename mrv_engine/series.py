"""Bulk series as the database layer delivers them: numpy arrays, one per column, sorted by time.

Timestamps are int64 milliseconds since the Unix epoch (UTC) at the meter (the reading's timestamp);
register values are int64 Wh; quality is the `protocol.metrics.Quality` bit mask of each reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from protocol.metrics import Quality

# A reading whose value is not a fresh measurement at a trustworthy time is not used for energy:
# the register difference across it still keeps the energy, only the time resolution is lost.
UNUSABLE = int(Quality.SOURCE_ERROR | Quality.ESTIMATED | Quality.SIMULATED | Quality.CLOCK_UNSYNCED)

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


def _int_column(values: ArrayLike, name: str) -> I64:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got {array.dtype}")
    return array.astype(np.int64, copy=False)


def _check_times(timestamps: I64, name: str) -> None:
    if timestamps.size > 1 and not bool(np.all(np.diff(timestamps) > 0)):
        raise ValueError(f"{name} must be strictly increasing")


@dataclass(frozen=True, eq=False)
class RegisterSeries:
    """A cumulative energy register (ENERGY_EXPORT_WH or ENERGY_IMPORT_WH) of one meter."""

    timestamps_ms: I64
    values_wh: I64
    quality: I64

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamps_ms", _int_column(self.timestamps_ms, "timestamps_ms"))
        object.__setattr__(self, "values_wh", _int_column(self.values_wh, "values_wh"))
        object.__setattr__(self, "quality", _int_column(self.quality, "quality"))
        if not len(self.timestamps_ms) == len(self.values_wh) == len(self.quality):
            raise ValueError("timestamps_ms, values_wh and quality must have the same length")
        _check_times(self.timestamps_ms, "timestamps_ms")
        if self.values_wh.size and int(self.values_wh.min()) < 0:
            raise ValueError("a cumulative register is never negative")

    @classmethod
    def of(cls, timestamps_ms: ArrayLike, values_wh: ArrayLike, quality: ArrayLike | None = None
           ) -> RegisterSeries:
        """Build from sequences; quality defaults to GOOD for every reading."""
        times = _int_column(timestamps_ms, "timestamps_ms")
        flags = np.zeros(times.size, np.int64) if quality is None else _int_column(quality, "quality")
        return cls(times, _int_column(values_wh, "values_wh"), flags)


@dataclass(frozen=True, eq=False)
class SampleSeries:
    """Instantaneous samples of one metric of one device (power W, irradiance W/m², wind speed m/s)."""

    timestamps_ms: I64
    values: F64

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamps_ms", _int_column(self.timestamps_ms, "timestamps_ms"))
        values = np.asarray(self.values, dtype=np.float64)
        object.__setattr__(self, "values", values)
        if values.ndim != 1 or values.size != self.timestamps_ms.size:
            raise ValueError("values must be one-dimensional and as long as timestamps_ms")
        _check_times(self.timestamps_ms, "timestamps_ms")
        if not bool(np.all(np.isfinite(values))):
            raise ValueError("samples must be finite; leave unusable samples out")


@dataclass(frozen=True, eq=False)
class ArrivalSeries:
    """Per envelope of one device: the device's own time and the server's arrival time (ms)."""

    device_time_ms: I64
    arrival_ms: I64

    def __post_init__(self) -> None:
        object.__setattr__(self, "device_time_ms", _int_column(self.device_time_ms, "device_time_ms"))
        object.__setattr__(self, "arrival_ms", _int_column(self.arrival_ms, "arrival_ms"))
        if self.device_time_ms.size != self.arrival_ms.size:
            raise ValueError("device_time_ms and arrival_ms must have the same length")
        _check_times(self.device_time_ms, "device_time_ms")


@dataclass(frozen=True, eq=False)
class MeterReadings:
    """The two registers of one meter; `import_wh` is None for a meter without an import register."""

    export_wh: RegisterSeries
    import_wh: RegisterSeries | None = None
