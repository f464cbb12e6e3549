"""The revenue meter at the grid connection: net power, cumulative registers, grid frequency.

The meter sees net power = generation − the plant's auxiliary consumption (trackers, transformer
no-load losses, controls, heaters). Positive net power is exported, negative is imported: at
night a PV plant imports its auxiliary load. Energy accumulates into two cumulative registers, as on
a revenue meter (OBIS 2.8.0 export, 1.8.0 import), read as integer Wh that never decrease.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulators.processes import GaussianAr1

_WH_PER_WS = 1 / 3600


@dataclass(frozen=True, slots=True)
class EnergyRegisters:
    """Cumulative export and import energy; fractions of a Wh are kept so nothing is lost."""

    export_wh: float = 0.0
    import_wh: float = 0.0

    def after(self, net_power_w: float, seconds: float) -> EnergyRegisters:
        """The registers after `seconds` at constant `net_power_w` (positive exports)."""
        energy_wh = net_power_w * seconds * _WH_PER_WS
        if energy_wh >= 0:
            return EnergyRegisters(self.export_wh + energy_wh, self.import_wh)
        return EnergyRegisters(self.export_wh, self.import_wh - energy_wh)

    @property
    def export_register(self) -> int:
        """What the meter displays: whole Wh, truncated (never rounded up)."""
        return math.floor(self.export_wh)

    @property
    def import_register(self) -> int:
        return math.floor(self.import_wh)


class GridFrequency:
    """Grid frequency as the meter measures it: nominal plus slow, small deviations."""

    def __init__(self, rng: random.Random, *, nominal_hz: float, step_s: float) -> None:
        self.nominal_hz = nominal_hz
        self._deviation = GaussianAr1(rng, step_s=step_s, tau_s=300.0)

    def step(self) -> None:
        self._deviation.step()

    @property
    def value_hz(self) -> float:
        return self.nominal_hz + 0.02 * self._deviation.value  # typical 1-sigma of a large grid
