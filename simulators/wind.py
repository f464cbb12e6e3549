"""A wind turbine's power curve: wind speed at hub height to electrical output.

Zero below cut-in, the cube law between cut-in and rated speed (power in the wind grows with v³),
rated power up to cut-out, and zero from cut-out on (the turbine feathers and stops to protect
itself). The wind itself comes from simulators.weather (autocorrelated Weibull).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PowerCurve:
    cut_in_m_s: float = 3.0
    rated_m_s: float = 12.0
    cut_out_m_s: float = 25.0

    def __post_init__(self) -> None:
        if not 0 <= self.cut_in_m_s < self.rated_m_s < self.cut_out_m_s:
            raise ValueError("the power curve needs 0 <= cut-in < rated < cut-out")

    def fraction(self, wind_speed_m_s: float) -> float:
        """Output as a fraction of rated power at this wind speed (0..1)."""
        v = wind_speed_m_s
        if v < self.cut_in_m_s or v >= self.cut_out_m_s:
            return 0.0
        if v >= self.rated_m_s:
            return 1.0
        return (v**3 - self.cut_in_m_s**3) / (self.rated_m_s**3 - self.cut_in_m_s**3)

    def power_w(self, wind_speed_m_s: float, rated_w: float) -> float:
        return rated_w * self.fraction(wind_speed_m_s)
