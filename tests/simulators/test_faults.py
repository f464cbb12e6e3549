"""Each meter fault leaves the signature the plausibility checks of METHODOLOGY.md look for."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from simulators.faults import FaultInjector, FaultWindow, MeterFault, MeterUnavailable
from simulators.plant import Plant, PlantConfig, PlantKind, PlantSnapshot
from simulators.solar import sun_position
from tests.simulators.common import HOUR, MINUTE, START

# The default site is at 105° E: 00:00 UTC is 07:00 local solar time; 13:00-22:00 UTC is night.
PV = PlantConfig(PlantKind.PV, 1, capacity_w=1_000_000)


def injector(*windows: FaultWindow, config: PlantConfig = PV) -> FaultInjector:
    return FaultInjector(Plant(config, START), windows)


def clean(t_ms: int, config: PlantConfig = PV) -> PlantSnapshot:
    return Plant(config, START).snapshot(t_ms)


def test_meter_outage_makes_the_meter_silent_inside_its_window_only() -> None:
    meter = injector(FaultWindow(MeterFault.METER_OUTAGE, START + HOUR, START + 2 * HOUR))
    assert meter.snapshot(START + HOUR - 1) == clean(START + HOUR - 1)
    for t in (START + HOUR, START + 90 * MINUTE, START + 2 * HOUR - 1):
        with pytest.raises(MeterUnavailable):
            meter.snapshot(t)
    assert meter.snapshot(START + 2 * HOUR) == clean(START + 2 * HOUR), "registers carry the energy on"


def test_gateway_offline_leaves_the_data_alone_and_flags_the_uplink() -> None:
    meter = injector(FaultWindow(MeterFault.GATEWAY_OFFLINE, START + HOUR, START + 2 * HOUR))
    times = (START, START + HOUR, START + 2 * HOUR - 1, START + 2 * HOUR)
    assert [meter.gateway_offline(t) for t in times] == [False, True, True, False]
    assert meter.snapshot(START + 90 * MINUTE) == clean(START + 90 * MINUTE)


def test_clock_drift_grows_with_time_and_resets_after_the_window() -> None:
    meter = injector(FaultWindow(MeterFault.CLOCK_DRIFT, START + HOUR, START + 5 * HOUR))  # 600 s per hour
    assert [meter.snapshot(START + HOUR + k * HOUR).clock_offset_ms for k in range(5)] == \
        [0, 600_000, 1_200_000, 1_800_000, 0]
    drifted = meter.snapshot(START + 3 * HOUR)
    assert drifted.device_time_ms == START + 3 * HOUR + 1_200_000
    assert replace(drifted, clock_offset_ms=0) == clean(START + 3 * HOUR)


def test_frozen_register_stops_counting_while_power_flows() -> None:
    window = FaultWindow(MeterFault.FROZEN_REGISTER, START + 2 * HOUR, START + 4 * HOUR)
    meter = injector(window)
    inside = [meter.snapshot(START + 2 * HOUR + k * 10 * MINUTE) for k in range(12)]
    assert {s.export_wh for s in inside} == {clean(START + 2 * HOUR).export_wh}
    assert all(s.net_power_w > 100_000 for s in inside), "the plant is producing all the while"
    after = meter.snapshot(START + 4 * HOUR)
    assert after.export_wh == clean(START + 4 * HOUR).export_wh > inside[-1].export_wh


def test_spike_is_one_absurd_jump_in_power_and_energy() -> None:
    meter = injector(FaultWindow(MeterFault.SPIKE, START + 3 * HOUR, START + 3 * HOUR + MINUTE))
    normal = clean(START + 3 * HOUR)
    spiked = meter.snapshot(START + 3 * HOUR)
    assert spiked.net_power_w == pytest.approx(normal.net_power_w + 20 * PV.capacity_w)
    assert spiked.net_power_w > 10 * PV.capacity_w
    assert spiked.export_wh - normal.export_wh == 20 * PV.capacity_w  # 20 h at nameplate in one reading
    assert meter.snapshot(START + 3 * HOUR + MINUTE) == clean(START + 3 * HOUR + MINUTE)


def test_night_generation_fabricates_export_in_the_dark() -> None:
    window = FaultWindow(MeterFault.NIGHT_GENERATION, START + 13 * HOUR, START + 22 * HOUR)
    meter = injector(window)
    night = meter.snapshot(START + 18 * HOUR)
    assert night.sun_elevation_deg < 0 and night.irradiance_w_m2 == 0
    assert night.net_power_w == pytest.approx(0.3 * PV.capacity_w - PV.aux_w)
    fabricated = night.export_wh - clean(START + 18 * HOUR).export_wh
    assert fabricated == pytest.approx(0.3 * PV.capacity_w * 5, rel=0.01)  # five hours of the night so far
    # The fabricated energy stays in the register after the window; dawn comes before 22:00 UTC.
    night_minutes = sum(sun_position(PV.lat_deg, PV.lon_deg, t).elevation_deg < 0
                        for t in range(window.start_ms, window.end_ms, MINUTE))
    kept = meter.snapshot(START + 26 * HOUR).export_wh - clean(START + 26 * HOUR).export_wh
    assert 8 * 60 < night_minutes < 9 * 60
    assert kept == pytest.approx(0.3 * PV.capacity_w * night_minutes / 60, abs=1)


def test_night_generation_only_fabricates_at_night() -> None:
    window = FaultWindow(MeterFault.NIGHT_GENERATION, START, START + 4 * HOUR)  # all daylight
    assert injector(window).snapshot(START + 4 * HOUR) == clean(START + 4 * HOUR)


def test_night_generation_is_a_pv_fault() -> None:
    with pytest.raises(ValueError, match="PV fault"):
        injector(FaultWindow(MeterFault.NIGHT_GENERATION, START, START + HOUR),
                 config=PlantConfig(PlantKind.WIND, 1))


@pytest.mark.parametrize("kind", list(PlantKind))
def test_duplicated_pattern_replays_the_donors_interval_energy(kind: PlantKind) -> None:
    victim = PlantConfig(kind, 1, weather_seed=99)
    donor = Plant(replace(victim, seed=2), START)
    window = FaultWindow(MeterFault.DUPLICATED_PATTERN, START + HOUR, START + 5 * HOUR, donor_seed=2)
    meter = injector(window, config=victim)
    times = range(START, START + 8 * HOUR + 1, 10 * MINUTE)
    faulty = [meter.snapshot(t) for t in times]
    reference = [donor.snapshot(t) for t in times]
    own = [clean(t, victim) for t in times]

    def steps(snaps: list[PlantSnapshot]) -> list[int]:
        return [b.export_wh - a.export_wh for a, b in itertools.pairwise(snaps)]

    inside = slice(6, 30)  # intervals between 01:00 and 05:00
    assert steps(faulty)[inside] == steps(reference)[inside]
    assert steps(own)[inside] != steps(reference)[inside]
    assert steps(faulty)[30:] == steps(own)[30:], "afterwards the device counts its own energy again"
    assert all(b.export_wh >= a.export_wh and b.import_wh >= a.import_wh
               for a, b in itertools.pairwise(faulty))


def test_faults_do_not_depend_on_how_often_the_meter_is_read() -> None:
    windows = (FaultWindow(MeterFault.FROZEN_REGISTER, START + 2 * HOUR, START + 3 * HOUR),
               FaultWindow(MeterFault.NIGHT_GENERATION, START + 12 * HOUR, START + 23 * HOUR),
               FaultWindow(MeterFault.DUPLICATED_PATTERN, START + 4 * HOUR, START + 6 * HOUR, donor_seed=5))
    often, seldom = injector(*windows), injector(*windows)
    for t in range(START, START + 30 * HOUR, MINUTE + 7):
        often.snapshot(t)
    target = START + 30 * HOUR
    assert often.snapshot(target) == seldom.snapshot(target)


def test_a_first_read_inside_a_window_sees_the_same_as_a_continuous_one() -> None:
    window = FaultWindow(MeterFault.FROZEN_REGISTER, START + 2 * HOUR, START + 4 * HOUR)
    continuous = injector(window)
    for t in range(START, START + 3 * HOUR, 5 * MINUTE):
        continuous.snapshot(t)
    assert injector(window).snapshot(START + 3 * HOUR) == continuous.snapshot(START + 3 * HOUR)


def test_window_validation() -> None:
    with pytest.raises(ValueError, match="end after"):
        FaultWindow(MeterFault.SPIKE, START, START)
    with pytest.raises(ValueError, match="donor_seed"):
        FaultWindow(MeterFault.DUPLICATED_PATTERN, START, START + 1)
    with pytest.raises(ValueError, match="donor_seed"):
        FaultWindow(MeterFault.SPIKE, START, START + 1, donor_seed=3)
    with pytest.raises(ValueError, match="no magnitude"):
        FaultWindow(MeterFault.FROZEN_REGISTER, START, START + 1, magnitude=2.0)
    with pytest.raises(ValueError, match="no magnitude"):
        _ = FaultWindow(MeterFault.METER_OUTAGE, START, START + 1).strength


def test_every_fault_is_described() -> None:
    assert all(len(fault.description) > 20 for fault in MeterFault)
