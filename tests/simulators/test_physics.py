"""Plant physics: the sun, PV output, wind output and the meter behave like the real things."""

from __future__ import annotations

import calendar
import itertools
import math
import random
import statistics

import pytest

from simulators.meter import EnergyRegisters
from simulators.plant import PlantConfig, PlantKind
from simulators.pv import PvArray, pv_output
from simulators.solar import clear_sky_ghi, plane_of_array, split_ghi, sun_position
from simulators.weather import Climate, weibull_from_normal
from simulators.wind import PowerCurve
from tests.simulators.common import CLEAR_SKY, HOUR, MINUTE, START, series


def utc_ms(*when: int) -> int:
    return calendar.timegm((*when, 0)[:6]) * 1000


def test_sun_at_solar_noon() -> None:
    # Equinox at the equator and Greenwich: nearly overhead around 12:07 UTC.
    noon = max((sun_position(0.0, 0.0, utc_ms(2025, 3, 20, 11, m)) for m in range(0, 120)),
               key=lambda s: s.elevation_deg)
    assert noon.elevation_deg == pytest.approx(90, abs=1.0)
    # Midsummer at 37.5° N: 90 - 37.5 + 23.44, due south.
    summer = max((sun_position(37.5, 105.0, START + m * MINUTE) for m in range(240, 360)),
                 key=lambda s: s.elevation_deg)
    assert summer.elevation_deg == pytest.approx(75.94, abs=0.5)
    assert summer.azimuth_deg == pytest.approx(180, abs=3)
    # South of the equator the noon sun stands in the north (Cape Town: noon near 10:48 UTC).
    south = max((sun_position(-33.9, 18.4, utc_ms(2025, 6, 21, 10, m)) for m in range(0, 120)),
                key=lambda s: s.elevation_deg)
    assert south.elevation_deg == pytest.approx(90 - 33.9 - 23.44, abs=0.5)
    assert min(south.azimuth_deg, 360 - south.azimuth_deg) < 3


def test_sun_rises_in_the_east_and_sets_in_the_west() -> None:
    morning = sun_position(37.5, 105.0, START - 2 * HOUR)  # 05:00 local solar time
    evening = sun_position(37.5, 105.0, START + 10 * HOUR)  # 17:00
    assert 30 < morning.azimuth_deg < 120
    assert 240 < evening.azimuth_deg < 330
    assert sun_position(37.5, 105.0, START + 17 * HOUR).elevation_deg < -20  # local midnight


def test_clear_sky_irradiance() -> None:
    night = sun_position(37.5, 105.0, START + 17 * HOUR)
    assert clear_sky_ghi(night) == 0
    noon = sun_position(37.5, 105.0, START + 5 * HOUR)
    ghi = clear_sky_ghi(noon)
    assert 950 < ghi < 1050
    dni, dhi = split_ghi(ghi, noon)
    assert dni * noon.cos_zenith + dhi == pytest.approx(ghi)
    assert plane_of_array(ghi, noon, tilt_deg=0, azimuth_deg=180, albedo=0.2) == pytest.approx(ghi)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pv_is_zero_at_night(seed: int) -> None:
    snaps = series(PlantConfig(PlantKind.PV, seed), hours=48, every_ms=5 * MINUTE)
    night = [s for s in snaps if s.sun_elevation_deg < 0]
    assert len(night) > 100
    assert all(s.generation_w == 0 and s.irradiance_w_m2 == 0 for s in night)
    assert all(s.net_power_w < 0 for s in night), "at night the plant imports its auxiliary load"


def test_pv_peaks_near_solar_noon() -> None:
    unclipped = PvArray(dc_ac_ratio=1.0)  # a clipped peak is a plateau with no single maximum
    config = PlantConfig(PlantKind.PV, 1, climate=CLEAR_SKY, pv=unclipped)
    snaps = series(config, hours=24, every_ms=5 * MINUTE)
    peak = max(snaps, key=lambda s: s.generation_w)
    noon = max(snaps, key=lambda s: s.sun_elevation_deg)
    # Hot modules in the early afternoon pull the peak slightly before noon, never far.
    assert abs(peak.time_ms - noon.time_ms) <= 30 * MINUTE


def test_clipping_never_exceeds_nameplate() -> None:
    cold_and_clear = Climate(cloud_bias=25.0, temperature_mean_c=-5.0, temperature_seasonal_c=0.0)
    config = PlantConfig(PlantKind.PV, 1, capacity_w=100_000, pv=PvArray(dc_ac_ratio=1.6),
                         climate=cold_and_clear)
    snaps = series(config, hours=48, every_ms=MINUTE)
    clipped = [s for s in snaps if s.clipped]
    assert len(clipped) > 60, "an oversized array clips around noon"
    assert all(s.dc_power_w is not None and s.dc_power_w * 0.97 > 100_000 for s in clipped)
    assert max(s.generation_w for s in snaps) == 100_000
    assert all(s.generation_w <= 100_000 and s.net_power_w <= 100_000 for s in snaps)


def test_hot_modules_produce_less() -> None:
    sun = sun_position(37.5, 105.0, START + 5 * HOUR)
    cool = pv_output(PvArray(), 1e6, lat_deg=37.5, sun=sun, clearness=1.0, ambient_c=5.0)
    hot = pv_output(PvArray(), 1e6, lat_deg=37.5, sun=sun, clearness=1.0, ambient_c=40.0)
    assert hot.module_temperature_c - cool.module_temperature_c == pytest.approx(35)
    def derate(module_c: float) -> float:
        return 1 - 0.004 * (module_c - 25)

    assert hot.dc_power_w / cool.dc_power_w == pytest.approx(derate(hot.module_temperature_c)
                                                             / derate(cool.module_temperature_c))


def test_power_curve_regions() -> None:
    curve = PowerCurve(cut_in_m_s=3, rated_m_s=12, cut_out_m_s=25)
    assert [curve.power_w(v, 2e6) for v in (0, 2.99, 25, 30)] == [0, 0, 0, 0]
    assert [curve.power_w(v, 2e6) for v in (12, 18, 24.99)] == [2e6, 2e6, 2e6]
    between = [curve.power_w(v, 2e6) for v in (3, 5, 8, 11)]
    assert between == sorted(between) and 0 <= between[0] < between[-1] < 2e6
    assert curve.fraction(7.5) == pytest.approx((7.5**3 - 27) / (12**3 - 27))


def test_wind_output_follows_the_power_curve_at_the_measured_speed() -> None:
    config = PlantConfig(PlantKind.WIND, 7)
    snaps = series(config, hours=72, every_ms=10 * MINUTE)
    for s in snaps:
        assert s.wind_speed_m_s is not None
        assert s.generation_w == config.power_curve.power_w(s.wind_speed_m_s, config.capacity_w)
    assert any(s.generation_w == 0 for s in snaps) and any(s.generation_w == config.capacity_w for s in snaps)


def test_wind_speed_is_weibull_distributed() -> None:
    k, c = 2.0, 8.0
    assert weibull_from_normal(0.0, k, c) == pytest.approx(c * math.log(2) ** (1 / k))  # the median
    rng = random.Random(1)
    samples = [weibull_from_normal(rng.gauss(0, 1), k, c) for _ in range(20_000)]
    assert statistics.fmean(samples) == pytest.approx(c * math.gamma(1 + 1 / k), rel=0.02)
    assert min(samples) >= 0


def test_wind_is_autocorrelated() -> None:
    snaps = series(PlantConfig(PlantKind.WIND, 3), hours=48, every_ms=MINUTE)
    speeds = [s.wind_speed_m_s or 0.0 for s in snaps]
    assert statistics.correlation(speeds[:-1], speeds[1:]) > 0.95


def test_energy_registers_split_net_power() -> None:
    registers = EnergyRegisters().after(3600.0, 3600).after(-1800.0, 3600).after(0.0, 3600)
    assert (registers.export_register, registers.import_register) == (3600, 1800)
    assert EnergyRegisters(10.9, 0.99).export_register == 10 and EnergyRegisters(0, 0.99).import_register == 0


@pytest.mark.parametrize("kind", list(PlantKind))
def test_meter_registers_are_monotonic_integers(kind: PlantKind) -> None:
    snaps = series(PlantConfig(kind, 11), hours=72, every_ms=7 * MINUTE + 13)
    for before, after in itertools.pairwise(snaps):
        assert type(after.export_wh) is int and type(after.import_wh) is int
        assert after.export_wh >= before.export_wh and after.import_wh >= before.import_wh
        assert after.generation_wh >= before.generation_wh
    assert snaps[-1].export_wh > 0 and snaps[-1].import_wh > 0


@pytest.mark.parametrize("kind", list(PlantKind))
def test_registers_count_exactly_the_power_shown(kind: PlantKind) -> None:
    config = PlantConfig(kind, 5, step_s=60)
    snaps = series(config, hours=24, every_ms=MINUTE)  # one snapshot per physics step
    integral_wh = sum(s.net_power_w for s in snaps[:-1]) / 60
    net_wh = (snaps[-1].export_wh - snaps[-1].import_wh) - (snaps[0].export_wh - snaps[0].import_wh)
    assert net_wh == pytest.approx(integral_wh, abs=2)  # two registers, each truncated to whole Wh
