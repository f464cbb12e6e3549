"""The simulated source: readings the protocol accepts, honest flags, restarts that continue."""

from __future__ import annotations

import pytest

from edge_agent.sources import SourceError
from edge_agent.sources.simulated import SimulatedSource
from protocol.envelope import GENESIS_PREV, Payload, encode_payload
from protocol.metrics import Metric, Quality
from simulators.faults import FaultWindow, MeterFault
from simulators.plant import PlantConfig, PlantKind

START = 1_750_464_000_000  # 2025-06-21T00:00:00Z
HOUR = 3_600_000


@pytest.mark.parametrize("kind", list(PlantKind))
def test_readings_are_valid_protocol_readings(kind: PlantKind) -> None:
    source = SimulatedSource(PlantConfig(kind, seed=1), origin_ms=START)
    for k in range(48):
        readings = source.read(START + k * HOUR // 2)
        encode_payload(Payload("dev-1", k, GENESIS_PREV, START, tuple(readings)))  # validates every value
        assert all(r.quality == Quality.SIMULATED for r in readings)
        assert all(isinstance(r.value, int) for r in readings if r.metric in (1, 2))


def test_each_kind_reports_its_own_sensors() -> None:
    pv = {r.metric for r in SimulatedSource(PlantConfig(PlantKind.PV, 1), origin_ms=START).read(START)}
    wind = {r.metric for r in SimulatedSource(PlantConfig(PlantKind.WIND, 1), origin_ms=START).read(START)}
    assert {Metric.IRRADIANCE_W_M2, Metric.MODULE_TEMPERATURE_C} <= pv
    assert Metric.WIND_SPEED_M_S not in pv
    assert Metric.WIND_SPEED_M_S in wind
    assert Metric.IRRADIANCE_W_M2 not in wind


def test_a_restarted_source_with_a_start_continues_the_same_registers() -> None:
    config = PlantConfig(PlantKind.PV, seed=4)
    first = SimulatedSource(config, origin_ms=START)
    before = [first.read(START + k * HOUR) for k in range(10)]
    restarted = SimulatedSource(config, origin_ms=START)  # e.g. the agent was killed and started again
    assert [restarted.read(START + k * HOUR) for k in range(5, 10)] == before[5:]


def test_without_a_start_the_plant_starts_at_the_first_read() -> None:
    source = SimulatedSource(PlantConfig(PlantKind.WIND, seed=4))
    first = {r.metric: r.value for r in source.read(START + 7 * 60_000)}
    assert (first[Metric.ENERGY_EXPORT_WH], first[Metric.ENERGY_IMPORT_WH]) == (0, 0)
    assert source.plant(0).config.seed == 4
    with pytest.raises(SourceError, match="precedes the plant's origin"):
        source.read(START - HOUR)


def test_an_outage_is_a_source_error() -> None:
    outage = FaultWindow(MeterFault.METER_OUTAGE, START + HOUR, START + 2 * HOUR)
    source = SimulatedSource(PlantConfig(PlantKind.PV, seed=1), [outage], origin_ms=START)
    source.read(START + HOUR - 1)
    with pytest.raises(SourceError, match="meter outage"):
        source.read(START + HOUR)
    source.read(START + 2 * HOUR)
