"""Site weather as a seeded state machine: cloudiness, ambient temperature and hub-height wind.

`Weather` is stepped on a fixed grid (`step()`), and `sample(t_ms)` reads the current state. All
three quantities come from `GaussianAr1` processes, so they are autocorrelated in time but keep
the intended marginal distribution:

- clearness (fraction of clear-sky irradiance reaching the ground): a slow day-to-day component
  plus a fast passing-cloud component, squashed into [min_clearness, 1] by a logistic;
- ambient temperature: seasonal and diurnal cycles (peak mid-afternoon, solar time) plus noise;
- wind speed: exactly Weibull(k, c) distributed, through the normal CDF (a Gaussian copula).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

from simulators.processes import GaussianAr1

_HOUR_S = 3600.0


@dataclass(frozen=True)
class Climate:
    """Parameters of a site's weather; the defaults describe a sunny, windy mid-latitude site."""

    cloud_bias: float = 1.0  # logistic offset: higher means clearer skies on average
    cloud_spread: float = 2.0  # logistic slope: higher means more clear/overcast extremes
    min_clearness: float = 0.12  # thick overcast still lets this fraction through
    cloud_slow_tau_h: float = 12.0  # weather systems
    cloud_fast_tau_h: float = 0.3  # passing clouds
    temperature_mean_c: float = 12.0
    temperature_seasonal_c: float = 12.0  # amplitude of the yearly cycle
    temperature_diurnal_c: float = 6.0  # amplitude of the daily cycle
    temperature_noise_c: float = 2.5
    temperature_tau_h: float = 18.0
    weibull_k: float = 2.0  # shape: 2 is the Rayleigh case typical of inland sites
    weibull_c_m_s: float = 8.0  # scale at hub height; the mean is c * Γ(1 + 1/k) ≈ 7.1 m/s
    wind_tau_h: float = 3.0

    def __post_init__(self) -> None:
        if not 0 < self.min_clearness < 1:
            raise ValueError("min_clearness must lie in (0, 1)")
        if self.weibull_k <= 0 or self.weibull_c_m_s <= 0:
            raise ValueError("the Weibull shape and scale must be positive")


@dataclass(frozen=True, slots=True)
class WeatherSample:
    clearness: float  # 0..1, multiplies clear-sky irradiance
    ambient_temperature_c: float
    wind_speed_m_s: float


def weibull_from_normal(z: float, k: float, c: float) -> float:
    """Map a standard-normal value to a Weibull(k, c) value with the same quantile."""
    upper_tail = 0.5 * math.erfc(z / math.sqrt(2))  # 1 - Φ(z), accurate in the far tail
    return c * math.pow(-math.log(max(upper_tail, 1e-300)), 1 / k)


class Weather:
    """Weather at one site, advanced one grid step of `step_s` seconds per `step()` call."""

    def __init__(self, climate: Climate, *, lat_deg: float, lon_deg: float, seed: int, step_s: float) -> None:
        self.climate = climate
        self._lat = lat_deg
        self._lon = lon_deg
        rng = random.Random(seed)
        self._cloud_slow = GaussianAr1(rng, step_s=step_s, tau_s=climate.cloud_slow_tau_h * _HOUR_S)
        self._cloud_fast = GaussianAr1(rng, step_s=step_s, tau_s=climate.cloud_fast_tau_h * _HOUR_S)
        self._temperature = GaussianAr1(rng, step_s=step_s, tau_s=climate.temperature_tau_h * _HOUR_S)
        self._wind = GaussianAr1(rng, step_s=step_s, tau_s=climate.wind_tau_h * _HOUR_S)

    def step(self) -> None:
        # Fixed draw order: the series depends on the seed only, never on which quantities are used.
        self._cloud_slow.step()
        self._cloud_fast.step()
        self._temperature.step()
        self._wind.step()

    def sample(self, t_ms: int) -> WeatherSample:
        c = self.climate
        # 0.8² + 0.6² = 1, so the sum is still N(0, 1).
        z_cloud = 0.8 * self._cloud_slow.value + 0.6 * self._cloud_fast.value
        clear_share = 1 / (1 + math.exp(-(c.cloud_bias + c.cloud_spread * z_cloud)))
        clearness = c.min_clearness + (1 - c.min_clearness) * clear_share
        wind = weibull_from_normal(self._wind.value, c.weibull_k, c.weibull_c_m_s)
        return WeatherSample(clearness, self._ambient_temperature(t_ms), wind)

    def _ambient_temperature(self, t_ms: int) -> float:
        c = self.climate
        tm = time.gmtime(t_ms // 1000)
        # Warmest in mid-July north of the equator and mid-January south of it.
        season_phase = 2 * math.pi * (tm.tm_yday - 196) / 365
        seasonal = c.temperature_seasonal_c * math.cos(season_phase) * (1 if self._lat >= 0 else -1)
        solar_hour = (tm.tm_hour + tm.tm_min / 60 + self._lon / 15) % 24
        diurnal = c.temperature_diurnal_c * math.cos(2 * math.pi * (solar_hour - 15) / 24)
        return c.temperature_mean_c + seasonal + diurnal + c.temperature_noise_c * self._temperature.value
