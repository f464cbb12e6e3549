"""Fleets: deterministic devices, offline gateways that deliver late, and the real edge agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.envelope import GENESIS_PREV, Reading, envelope_hash, verify_envelope
from simulators.faults import FaultWindow, MeterFault
from simulators.fleet import Fleet, FleetConfig, FleetStats
from simulators.plant import PlantKind
from tests.simulators.common import HOUR, START

Delivered = list[tuple[str, int, list[Reading]]]


def run(fleet: Fleet, hours: float) -> tuple[Delivered, FleetStats]:
    delivered: Delivered = []
    stats = fleet.run(hours, sink=lambda device, ts, readings: delivered.append((device, ts, readings)))
    return delivered, stats


def test_devices_are_named_by_site_and_kind() -> None:
    fleet = Fleet(FleetConfig(plants=3, devices_per_plant=2))
    assert [d.device_id for d in fleet.devices] == [
        "p000-pv-00", "p000-pv-01", "p001-wind-00", "p001-wind-01", "p002-pv-00", "p002-pv-01"]
    assert [d.config.kind for d in fleet.devices[::2]] == [PlantKind.PV, PlantKind.WIND, PlantKind.PV]
    first, second, other_site = (d.config for d in fleet.devices[:3])
    assert first.weather_seed == second.weather_seed and first.seed != second.seed
    assert (first.lat_deg, first.lon_deg) == (second.lat_deg, second.lon_deg)
    assert (first.lat_deg, first.lon_deg) != (other_site.lat_deg, other_site.lon_deg)


def test_a_fleet_is_deterministic_for_its_seed() -> None:
    config = FleetConfig(plants=2, devices_per_plant=2, seed=5, interval_s=300)
    assert run(Fleet(config), 6)[0] == run(Fleet(config), 6)[0]
    assert run(Fleet(config), 6)[0] != run(Fleet(FleetConfig(plants=2, devices_per_plant=2, seed=6,
                                                             interval_s=300)), 6)[0]


def one_site(devices: int, device_id: str, fault: FaultWindow) -> Fleet:
    return Fleet(FleetConfig(plants=1, devices_per_plant=devices, interval_s=600,
                             faults={device_id: [fault]}))


def test_an_offline_gateway_delivers_its_readings_late_and_in_order() -> None:
    fleet = one_site(2, "p000-pv-01", FaultWindow(MeterFault.GATEWAY_OFFLINE, START + HOUR, START + 2 * HOUR))
    delivered, stats = run(fleet, 3)
    late = [(ts, i) for i, (device, ts, _) in enumerate(delivered) if device == "p000-pv-01"]
    every_read = list(range(START, START + 3 * HOUR + 1, 600_000))
    assert [ts for ts, _ in late] == every_read, "nothing lost, in order"
    positions = dict(late)
    on_time = {ts: i for i, (device, ts, _) in enumerate(delivered) if device == "p000-pv-00"}
    held = range(START + HOUR, START + 2 * HOUR, 600_000)
    assert all(positions[ts] > on_time[START + 2 * HOUR] for ts in held), "delivered when the uplink returns"
    assert stats.held_back == len(held) and stats.still_held == 0


def test_readings_still_held_at_the_end_are_counted() -> None:
    fleet = one_site(1, "p000-pv-00", FaultWindow(MeterFault.GATEWAY_OFFLINE, START + HOUR, START + 5 * HOUR))
    _, stats = run(fleet, 2)
    assert stats.still_held == 7  # 01:00 to 02:00 inclusive


def test_meter_outages_are_counted_as_failed_reads() -> None:
    outage = FaultWindow(MeterFault.METER_OUTAGE, START, START + HOUR)
    delivered, stats = run(one_site(1, "p000-pv-00", outage), 2)
    assert stats.source_errors == 6 and stats.reads == 7
    assert [ts for _, ts, _ in delivered] == list(range(START + HOUR, START + 2 * HOUR + 1, 600_000))


def test_faults_must_name_fleet_devices() -> None:
    with pytest.raises(ValueError, match="not in the fleet"):
        Fleet(FleetConfig(faults={"p009-pv-00": [FaultWindow(MeterFault.SPIKE, START, START + 1)]}))


def test_speed_paces_simulated_time() -> None:
    naps: list[float] = []
    Fleet(FleetConfig(plants=1, devices_per_plant=1, interval_s=600)).run(2, speed=3600, sleep=naps.append)
    assert naps and max(naps) == pytest.approx(2.0, abs=0.2)  # two simulated hours at 3600x: two seconds


def test_progress_is_reported_each_simulated_hour() -> None:
    hours: list[float] = []
    Fleet(FleetConfig(plants=1, devices_per_plant=1, interval_s=600)).run(
        2.5, progress=lambda stats: hours.append(stats.simulated_hours))
    assert hours == [1.0, 2.0, 2.5]


def test_the_edge_agent_signs_exactly_the_fleets_readings(tmp_path: Path) -> None:
    agent_module = pytest.importorskip("edge_agent.agent")
    from edge_agent.config import AgentSettings
    from simulators.fleet_agent import fleet_agent, public_keys, sample_fleet

    fleet = Fleet(FleetConfig(plants=2, devices_per_plant=1, interval_s=600, seed=3))
    expected: dict[str, list[tuple[int, list[Reading]]]] = {}
    fleet.run(2, sink=lambda device, ts, readings: expected.setdefault(device, []).append((ts, readings)))
    keys = {record.device_id: record.public_key for record in public_keys(fleet)}
    settings = AgentSettings(data_dir=tmp_path / "agent", interval_s=600, clock_speed=600)
    with fleet_agent(fleet, settings, project_id="sim") as agent:
        assert isinstance(agent, agent_module.EdgeAgent)
        assert sample_fleet(agent, fleet, 2) == 2 * 13
        for device_id, public_key in keys.items():
            rows = agent.outbox.pending(device_id, -1, 100)
            envelopes = [verify_envelope(raw, public_key) for _, raw in rows]
            signed = [(e.payload.device_time_ms, list(e.payload.readings)) for e in envelopes]
            assert signed == expected[device_id]
            assert [e.seq for e in envelopes] == list(range(13))
            prevs = [GENESIS_PREV, *(envelope_hash(e.raw) for e in envelopes[:-1])]
            assert [e.payload.prev for e in envelopes] == prevs
