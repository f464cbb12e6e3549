"""A simulated plant: weather, generator (PV array or wind turbine) and revenue meter together.

`Plant` is a state machine on a fixed time grid that starts at `origin_ms` and advances in steps of
`config.step_s`. Between grid points power is held constant and the registers grow linearly, so
`snapshot(t_ms)` is defined at every millisecond and the energy a meter counts is exactly the
integral of the power it shows. The state for any time is a function of (config, origin_ms,
t_ms) only: querying forward steps from the cached state; querying an earlier time replays from
the origin.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field, replace
from typing import Protocol

from simulators.meter import EnergyRegisters, GridFrequency
from simulators.processes import GaussianAr1, derive_seed
from simulators.pv import PvArray, pv_output
from simulators.solar import sun_position
from simulators.weather import Climate, Weather
from simulators.wind import PowerCurve


class PlantKind(enum.StrEnum):
    PV = "pv"
    WIND = "wind"


_DEFAULT_AUX_FRACTION = {PlantKind.PV: 0.002, PlantKind.WIND: 0.005}
# How much one device deviates from its site: a fixed offset (module tolerance, turbine position)
# and a slowly varying part (local shading, turbulence), each a standard deviation.
_DEVICE_SPREAD = {PlantKind.PV: (0.02, 0.015), PlantKind.WIND: (0.03, 0.05)}


@dataclass(frozen=True)
class PlantConfig:
    """What to simulate. `capacity_w` is the AC nameplate (PV) or rated power (wind).

    `seed` drives the device's own variation and meter; `weather_seed` (default: `seed`) drives the
    site weather, so devices of one site share clouds and wind but never produce identical series.
    """

    kind: PlantKind
    seed: int
    capacity_w: float = 1_000_000.0
    lat_deg: float = 37.5  # a dry, sunny, windy north-west China site by default
    lon_deg: float = 105.0
    step_s: int = 60
    weather_seed: int | None = None
    aux_fraction: float | None = None  # auxiliary load / capacity; None: 0.2 % PV, 0.5 % wind
    nominal_hz: float = 50.0
    initial_export_wh: int = 0
    initial_import_wh: int = 0
    pv: PvArray = field(default_factory=PvArray)
    power_curve: PowerCurve = field(default_factory=PowerCurve)
    climate: Climate = field(default_factory=Climate)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", PlantKind(self.kind))
        if self.capacity_w <= 0:
            raise ValueError("capacity_w must be positive")
        if not (-90 <= self.lat_deg <= 90 and -180 <= self.lon_deg <= 180):
            raise ValueError("lat_deg must lie in [-90, 90] and lon_deg in [-180, 180]")
        if self.step_s < 1:
            raise ValueError("step_s must be at least 1 second")
        if not 0 <= self.aux_load_fraction < 0.5:
            raise ValueError("aux_fraction must lie in [0, 0.5)")
        if self.initial_export_wh < 0 or self.initial_import_wh < 0:
            raise ValueError("initial registers cannot be negative")

    @property
    def aux_load_fraction(self) -> float:
        return _DEFAULT_AUX_FRACTION[self.kind] if self.aux_fraction is None else self.aux_fraction

    @property
    def aux_w(self) -> float:
        return self.capacity_w * self.aux_load_fraction

    @property
    def site_seed(self) -> int:
        return self.seed if self.weather_seed is None else self.weather_seed


@dataclass(frozen=True, slots=True)
class PlantSnapshot:
    """Everything the plant's meters and sensors show at `time_ms`. Power in W, energy in Wh."""

    time_ms: int
    kind: PlantKind
    capacity_w: float
    sun_elevation_deg: float
    ambient_temperature_c: float
    generation_w: float  # AC output of the inverter or turbine
    net_power_w: float  # at the meter, positive when exporting
    export_wh: int  # cumulative registers
    import_wh: int
    generation_wh: int  # the inverter's or turbine's own lifetime counter
    frequency_hz: float
    clipped: bool  # output limited to nameplate
    ghi_w_m2: float | None = None  # PV only
    irradiance_w_m2: float | None = None  # plane of array, PV only
    module_temperature_c: float | None = None  # PV only
    dc_power_w: float | None = None  # PV only
    wind_speed_m_s: float | None = None  # wind only
    clock_offset_ms: int = 0  # how far the device clock is off (clock-drift fault)

    @property
    def device_time_ms(self) -> int:
        """The time the device itself believes it is."""
        return self.time_ms + self.clock_offset_ms


class PlantLike(Protocol):
    """Anything that answers "what do the meters show at t?": a `Plant`, or one with faults."""

    @property
    def config(self) -> PlantConfig: ...

    def snapshot(self, t_ms: int) -> PlantSnapshot: ...


class Plant:
    """One simulated device's plant and meter, starting at `origin_ms` (see the module doc)."""

    def __init__(self, config: PlantConfig, origin_ms: int) -> None:
        self.config = config
        self.origin_ms = origin_ms
        self._step_ms = config.step_s * 1000
        self._reset()

    def _reset(self) -> None:
        c = self.config
        self._weather = Weather(c.climate, lat_deg=c.lat_deg, lon_deg=c.lon_deg, seed=c.site_seed,
                                step_s=c.step_s)
        device_rng = random.Random(derive_seed(c.seed, "device"))
        fixed_spread, varying_spread = _DEVICE_SPREAD[c.kind]
        self._gain_fixed = 1 + max(-3.0, min(3.0, device_rng.gauss(0.0, 1.0))) * fixed_spread
        self._gain_varying_spread = varying_spread
        self._gain_noise = GaussianAr1(device_rng, step_s=c.step_s, tau_s=600.0)
        self._frequency = GridFrequency(device_rng, nominal_hz=c.nominal_hz, step_s=c.step_s)
        self._k = 0
        self._meter = EnergyRegisters(float(c.initial_export_wh), float(c.initial_import_wh))
        self._counter = EnergyRegisters()
        self._now = self._conditions(self.origin_ms)

    def snapshot(self, t_ms: int) -> PlantSnapshot:
        if t_ms < self.origin_ms:
            raise ValueError(f"time {t_ms} precedes the plant's origin {self.origin_ms}")
        k = (t_ms - self.origin_ms) // self._step_ms
        if k < self._k:
            self._reset()
        while self._k < k:
            self._advance()
        seconds = (t_ms - self._now.time_ms) / 1000
        meter = self._meter.after(self._now.net_power_w, seconds)
        counter = self._counter.after(self._now.generation_w, seconds)
        return replace(self._now, time_ms=t_ms, export_wh=meter.export_register,
                       import_wh=meter.import_register, generation_wh=counter.export_register)

    def _advance(self) -> None:
        step_s = self.config.step_s
        self._meter = self._meter.after(self._now.net_power_w, step_s)
        self._counter = self._counter.after(self._now.generation_w, step_s)
        self._weather.step()
        self._gain_noise.step()
        self._frequency.step()
        self._k += 1
        self._now = self._conditions(self.origin_ms + self._k * self._step_ms)

    def _conditions(self, t_ms: int) -> PlantSnapshot:
        """The instantaneous state at a grid point (registers are filled in by `snapshot`)."""
        c = self.config
        sun = sun_position(c.lat_deg, c.lon_deg, t_ms)
        weather = self._weather.sample(t_ms)
        gain = max(0.0, self._gain_fixed + self._gain_varying_spread * self._gain_noise.value)
        ghi = poa = module_temperature = dc_power = wind = None
        if c.kind is PlantKind.PV:
            pv = pv_output(c.pv, c.capacity_w, lat_deg=c.lat_deg, sun=sun, clearness=weather.clearness,
                           ambient_c=weather.ambient_temperature_c, gain=gain)
            generation, clipped = pv.ac_power_w, pv.clipped
            ghi, poa, dc_power = pv.ghi_w_m2, pv.poa_w_m2, pv.dc_power_w
            module_temperature = pv.module_temperature_c
        else:
            # The turbine's own anemometer sees the site wind scaled by its position in the farm.
            wind = weather.wind_speed_m_s * gain
            generation, clipped = c.power_curve.power_w(wind, c.capacity_w), False
        return PlantSnapshot(
            time_ms=t_ms, kind=c.kind, capacity_w=c.capacity_w, sun_elevation_deg=sun.elevation_deg,
            ambient_temperature_c=weather.ambient_temperature_c, generation_w=generation,
            net_power_w=generation - c.aux_w, export_wh=0, import_wh=0, generation_wh=0,
            frequency_hz=self._frequency.value_hz, clipped=clipped, ghi_w_m2=ghi, irradiance_w_m2=poa,
            module_temperature_c=module_temperature, dc_power_w=dc_power, wind_speed_m_s=wind)
