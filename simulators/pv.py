"""A PV array and its inverter: irradiance on the modules to AC power at the grid connection.

Chain: clear-sky GHI × clearness → plane-of-array irradiance (simulators.solar) → module
temperature by the NOCT model → DC power with a linear temperature coefficient (−0.4 %/K about
25 °C for crystalline silicon) and lumped system losses → inverter efficiency → clipping at the AC
nameplate (DC arrays are oversized, so clear middays clip).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.solar import SunPosition, clear_sky_ghi, plane_of_array

STC_IRRADIANCE_W_M2 = 1000.0
STC_TEMPERATURE_C = 25.0


@dataclass(frozen=True)
class PvArray:
    """Design of a PV plant relative to its AC nameplate (`capacity_w` of the plant)."""

    dc_ac_ratio: float = 1.25  # DC peak / AC nameplate: clear middays clip
    tilt_deg: float = 25.0
    azimuth_deg: float | None = None  # clockwise from north; None faces the equator
    temperature_coefficient_per_k: float = -0.004
    noct_c: float = 45.0  # nominal operating cell temperature (800 W/m², 20 °C air)
    system_losses: float = 0.10  # soiling, wiring, mismatch, degradation
    inverter_efficiency: float = 0.97
    albedo: float = 0.2

    def __post_init__(self) -> None:
        if self.dc_ac_ratio <= 0 or not 0 <= self.system_losses < 1 or not 0 < self.inverter_efficiency <= 1:
            raise ValueError("dc_ac_ratio must be positive, losses in [0, 1), efficiency in (0, 1]")

    def facing(self, lat_deg: float) -> float:
        """The array azimuth: the configured one, else due south (north of the equator) or north."""
        if self.azimuth_deg is not None:
            return self.azimuth_deg
        return 180.0 if lat_deg >= 0 else 0.0


@dataclass(frozen=True, slots=True)
class PvOutput:
    ghi_w_m2: float
    poa_w_m2: float  # plane-of-array irradiance
    module_temperature_c: float
    dc_power_w: float
    ac_power_w: float
    clipped: bool  # the inverter limited output to its nameplate


def module_temperature(ambient_c: float, poa_w_m2: float, noct_c: float) -> float:
    """Cell temperature by the NOCT model: rises linearly with irradiance above ambient."""
    return ambient_c + (noct_c - 20.0) / 800.0 * poa_w_m2


def pv_output(array: PvArray, capacity_w: float, *, lat_deg: float, sun: SunPosition, clearness: float,
              ambient_c: float, gain: float = 1.0) -> PvOutput:
    """AC output of a plant with AC nameplate `capacity_w`; `gain` is the device's own
    deviation (module tolerance, local shading) applied to DC power before clipping."""
    ghi = clearness * clear_sky_ghi(sun)
    poa = plane_of_array(ghi, sun, tilt_deg=array.tilt_deg, azimuth_deg=array.facing(lat_deg),
                         albedo=array.albedo)
    t_module = module_temperature(ambient_c, poa, array.noct_c)
    derate = 1 + array.temperature_coefficient_per_k * (t_module - STC_TEMPERATURE_C)
    dc = max(0.0, capacity_w * array.dc_ac_ratio * poa / STC_IRRADIANCE_W_M2 * derate
             * (1 - array.system_losses) * gain)
    ac = dc * array.inverter_efficiency
    return PvOutput(ghi, poa, t_module, dc, min(ac, capacity_w), ac > capacity_w)
