"""From a cumulative register series to steps between consecutive usable readings.

Each step is classified:

* NORMAL: the register did not decrease; the step's energy is the difference.
* ROLLOVER: the register decreased, a register width (modulus) is configured, and the wrapped difference
  is an energy the meter could have seen in the time (at most twice its maximum power), so the register
  wrapped: energy = difference + modulus.
* RESET: the reading carries `Quality.REGISTER_RESET` without being a plausible wrap, or the register
  decreased otherwise: a meter replacement or reset. The step's energy is unknown and set to 0; a new
  segment starts at the reading. Callers bound it conservatively.

Readings flagged SOURCE_ERROR, ESTIMATED, SIMULATED or CLOCK_UNSYNCED are dropped first; a reset flag on
a dropped reading moves to the next usable one so that the discontinuity is not lost.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mrv_engine.series import I64, UNUSABLE, RegisterSeries
from mrv_engine.units import MS_PER_HOUR
from protocol.metrics import Quality

# A real wrap implies a small step; a replacement read as a wrap implies an absurd one.
ROLLOVER_HEADROOM = 2.0


class StepKind(enum.IntEnum):
    NORMAL = 0
    ROLLOVER = 1
    RESET = 2


@dataclass(frozen=True, eq=False)
class RegisterSteps:
    """Usable readings (`times_ms`, `values_wh`) and the n-1 steps between them."""

    times_ms: I64
    values_wh: I64
    delta_wh: I64  # energy of each step; 0 for RESET
    kind: NDArray[np.int8]
    dropped: tuple[tuple[str, int], ...]  # unusable readings left out, by quality flag

    @property
    def t0(self) -> I64:
        return self.times_ms[:-1]

    @property
    def t1(self) -> I64:
        return self.times_ms[1:]

    @functools.cached_property
    def counted(self) -> NDArray[np.bool_]:
        """Steps whose energy is known (not a reset)."""
        return np.asarray(self.kind != StepKind.RESET, dtype=np.bool_)


def _usable(series: RegisterSeries) -> tuple[I64, I64, NDArray[np.bool_], tuple[tuple[str, int], ...]]:
    """Times and values of the usable readings, whether a reset flag falls in the step before each (the
    step ending at the reading, or at the next usable one if the flagged reading was dropped), and the
    readings dropped per flag."""
    quality = series.quality
    if not quality.any():  # the usual case: every reading good
        return series.timestamps_ms, series.values_wh, np.zeros(max(quality.size - 1, 0), np.bool_), ()
    usable = (quality & UNUSABLE) == 0
    dropped = tuple((flag.name.lower(), int(np.count_nonzero(~usable & ((quality & flag) != 0))))
                    for flag in Quality if flag & UNUSABLE and flag.name is not None)
    resets_so_far = np.cumsum((quality & Quality.REGISTER_RESET) != 0)
    index = np.flatnonzero(usable)
    return (series.timestamps_ms[index], series.values_wh[index], np.diff(resets_so_far[index]) > 0,
            tuple(item for item in dropped if item[1]))


def register_steps(series: RegisterSeries, *, max_power_w: float, modulus_wh: int | None = None
                   ) -> RegisterSteps:
    times, values, reset_flag, dropped = _usable(series)

    diff = np.diff(values)
    decrease = diff < 0
    if modulus_wh is None:
        wrap = np.zeros(diff.size, dtype=np.bool_)
    else:
        limit_wh = ROLLOVER_HEADROOM * max_power_w * np.diff(times) / MS_PER_HOUR
        wrap = decrease & (diff + modulus_wh <= limit_wh)
    kind = np.full(diff.size, StepKind.NORMAL, dtype=np.int8)
    kind[wrap] = StepKind.ROLLOVER
    kind[(decrease | reset_flag) & ~wrap] = StepKind.RESET
    delta = np.where(kind == StepKind.NORMAL, diff, 0)
    if modulus_wh is not None:
        delta = np.where(wrap, diff + modulus_wh, delta)
    return RegisterSteps(times, values, delta.astype(np.int64), kind, dropped)
