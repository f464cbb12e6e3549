"""The simulator's SunSpec Modbus TCP server read over TCP by the edge agent's SunSpec source.

The source must report exactly what the simulated device holds: every register identical, energy
registers to the Wh (at the served resolution), power and sensors within scale-factor rounding.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from pymodbus.client import ModbusTcpClient

from edge_agent.sources import SourceError
from edge_agent.sources.sunspec import SunSpecSource
from protocol.envelope import Reading
from protocol.metrics import Metric
from simulators.faults import FaultInjector, FaultWindow, MeterFault
from simulators.modbus_server import SunSpecServer
from simulators.plant import Plant, PlantConfig, PlantKind
from simulators.sunspec_image import BASE_ADDRESS, MAP_SIZE
from tests.simulators.common import HOUR, MINUTE, START

pytestmark = pytest.mark.integration

# Daylight and night at the default site (105° E), one of them inside a meter outage.
TIMES = [START + 5 * HOUR, START + 5 * HOUR + 37 * MINUTE + 11_111, START + 9 * HOUR, START + 17 * HOUR]
OUTAGE = FaultWindow(MeterFault.METER_OUTAGE, START + 20 * HOUR, START + 21 * HOUR)


@pytest.fixture(params=list(PlantKind))
def server(request: pytest.FixtureRequest) -> Iterator[SunSpecServer]:
    plant = FaultInjector(Plant(PlantConfig(request.param, 3, capacity_w=10_000), START), [OUTAGE])
    with SunSpecServer(plant, port=0).start(START) as running:
        yield running


@pytest.fixture
def source(server: SunSpecServer) -> Iterator[SunSpecSource]:
    host, port = server.address
    reader = SunSpecSource(host, port, unit_id=7, timeout_s=2)  # any unit id answers
    yield reader
    reader.close()


def raw_map(server: SunSpecServer) -> list[int]:
    host, port = server.address
    with ModbusTcpClient(host, port=port, timeout=2) as client:
        registers: list[int] = []
        while len(registers) < MAP_SIZE:
            count = min(125, MAP_SIZE - len(registers))
            response = client.read_holding_registers(BASE_ADDRESS + len(registers), count=count, device_id=1)
            assert not response.isError()
            registers += response.registers
    return registers


def by_metric(readings: list[Reading]) -> dict[Metric, int | float]:
    return {Metric(r.metric): r.value for r in readings}


def test_every_register_read_over_tcp_is_the_one_the_simulator_holds(server: SunSpecServer) -> None:
    for t in TIMES:
        server.update(t)
        assert raw_map(server) == server.registers


def test_the_source_reports_the_simulators_values(server: SunSpecServer, source: SunSpecSource) -> None:
    power_step = 10 ** server.image.power_sf
    kind = server.plant.config.kind
    for t in TIMES:
        snap = server.update(t)
        assert snap is not None
        got = by_metric(source.read(t))
        assert got[Metric.ENERGY_EXPORT_WH] == snap.export_wh  # to the Wh: 10 kW serves 1 Wh resolution
        assert got[Metric.ENERGY_IMPORT_WH] == snap.import_wh
        assert abs(got[Metric.ACTIVE_POWER_W] - snap.net_power_w) <= power_step / 2
        assert got[Metric.FREQUENCY_HZ] == pytest.approx(snap.frequency_hz, abs=0.005)
        assert got[Metric.AMBIENT_TEMPERATURE_C] == pytest.approx(snap.ambient_temperature_c, abs=0.05)
        if snap.kind is PlantKind.PV:
            assert snap.irradiance_w_m2 is not None and snap.module_temperature_c is not None
            assert got[Metric.IRRADIANCE_W_M2] == pytest.approx(snap.irradiance_w_m2, abs=0.5)
            assert got[Metric.MODULE_TEMPERATURE_C] == pytest.approx(snap.module_temperature_c, abs=0.05)
            assert Metric.WIND_SPEED_M_S not in got
        else:
            assert snap.wind_speed_m_s is not None
            assert got[Metric.WIND_SPEED_M_S] == pytest.approx(snap.wind_speed_m_s, abs=0.5)
            assert Metric.IRRADIANCE_W_M2 not in got and Metric.MODULE_TEMPERATURE_C not in got
    assert source.identity["Mn"] == "mrv-ledger" and source.identity["SN"] == f"SIM-{kind}-3"


def test_a_meter_outage_fails_the_read_and_the_source_recovers(server: SunSpecServer,
                                                                 source: SunSpecSource) -> None:
    server.update(OUTAGE.start_ms - MINUTE)
    before = by_metric(source.read(OUTAGE.start_ms - MINUTE))
    assert server.update(OUTAGE.start_ms) is None
    with pytest.raises(SourceError, match="Modbus exception 11"):
        source.read(OUTAGE.start_ms)
    snap = server.update(OUTAGE.end_ms)
    assert snap is not None
    after = by_metric(source.read(OUTAGE.end_ms))
    assert after[Metric.ENERGY_EXPORT_WH] == snap.export_wh >= before[Metric.ENERGY_EXPORT_WH]


def test_a_large_plant_serves_energy_at_its_scale_factor_resolution() -> None:
    plant = Plant(PlantConfig(PlantKind.PV, 3, capacity_w=5_000_000), START)
    with SunSpecServer(plant, port=0).start(START + 6 * HOUR) as server:
        snap = server.snapshot
        assert snap is not None and server.image.energy_sf == 3
        source = SunSpecSource(*server.address, timeout_s=2)
        try:
            got = by_metric(source.read(0))
        finally:
            source.close()
    assert got[Metric.ENERGY_EXPORT_WH] == snap.export_wh // 1000 * 1000
    assert abs(got[Metric.ACTIVE_POWER_W] - snap.net_power_w) <= 10**server.image.power_sf / 2


def test_an_unreachable_device_is_a_source_error() -> None:
    plant = Plant(PlantConfig(PlantKind.WIND, 3), START)
    server = SunSpecServer(plant, port=0).start(START)
    address = server.address
    server.stop()
    source = SunSpecSource(*address, timeout_s=0.5)
    with pytest.raises(SourceError, match=re.escape(f"{address[0]}:{address[1]}")):
        source.read(0)
    source.close()


def test_the_cli_serves_until_interrupted() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import mrv_cli, sys; sys.exit(mrv_cli.main())", "sim",
                                "modbus", "--kind", "wind", "--port", "0", "--speed", "60"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"on 127\.0\.0\.1:(\d+)", banner)
        assert match, banner
        source = SunSpecSource("127.0.0.1", int(match.group(1)), timeout_s=2)
        readings = by_metric(source.read(0))
        source.close()
        assert Metric.WIND_SPEED_M_S in readings and Metric.ENERGY_EXPORT_WH in readings
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


def test_a_busy_port_is_reported_when_starting(server: SunSpecServer) -> None:
    with pytest.raises(RuntimeError, match="did not start"):
        SunSpecServer(server.plant, port=server.address[1]).start(START)
