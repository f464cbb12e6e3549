"""The SunSpec source against in-memory devices: discovery, decoding, mapping, failures."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from pymodbus.exceptions import ConnectionException
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from edge_agent.sources import SourceError
from edge_agent.sources.sunspec import PowerDirection, SunSpecSource, readings_from_models
from edge_agent.sources.sunspec_models import SUNS_MARKER, ModelBlock, Raw, encode_model
from protocol.envelope import Reading
from protocol.metrics import Metric

NOW = 1_750_500_000_000
Model = tuple[int, dict[str, Raw]]
COMMON: Model = (1, {"Mn": "Acme", "Md": "M-1", "SN": "A123", "DA": 1})
METER: Model = (203, {"TotWhExp": 1_234_567, "TotWhImp": 8_910, "TotWh_SF": 0, "W": -1500, "W_SF": 1,
                      "Hz": 4998, "Hz_SF": -2})
INVERTER: Model = (103, {"W": 15000, "W_SF": 0, "WH": 2_000_000, "WH_SF": 1, "Hz": 5001, "Hz_SF": -2})


def sunspec_map(base: int, models: Sequence[Model], *, end: bool = True,
                raw_models: Sequence[list[int]] = ()) -> dict[int, int]:
    """Registers of a SunSpec device: marker at `base`, the models, then the end model."""
    registers = list(SUNS_MARKER)
    for model_id, values in models:
        registers += encode_model(model_id, values)
    for block in raw_models:
        registers += block
    if end:
        registers += [0xFFFF, 0]
    return {base + i: value for i, value in enumerate(registers)}


class FakeDevice:
    """A Modbus device in memory: holding registers by address, anything else an illegal address."""

    def __init__(self, registers: dict[int, int]) -> None:
        self.registers = registers
        self.down = False
        self.exception: int | None = None
        self.reads: list[tuple[int, int]] = []
        self.closed = 0

    def read_holding_registers(self, address: int, *, count: int = 1, device_id: int = 1,
                               no_response_expected: bool = False) -> ModbusPDU:
        if self.down:
            raise ConnectionException("connection refused")
        self.reads.append((address, count))
        if self.exception is not None:
            return ExceptionResponse(3, self.exception)
        wanted = range(address, address + count)
        if any(a not in self.registers for a in wanted):
            return ExceptionResponse(3, 2)
        return ModbusPDU(registers=[self.registers[a] for a in wanted])

    def close(self) -> None:
        self.closed += 1


def source_for(device: FakeDevice, meter_power_positive: PowerDirection = "import") -> SunSpecSource:
    return SunSpecSource("meter.test", 502, client=device, meter_power_positive=meter_power_positive)


def values(readings: list[Reading]) -> dict[Metric, int | float]:
    assert all(r.ts_ms == NOW and r.quality == 0 for r in readings)
    return {Metric(r.metric): r.value for r in readings}


def test_meter_registers_map_to_protocol_metrics() -> None:
    source = source_for(FakeDevice(sunspec_map(40000, [COMMON, INVERTER, METER])))
    assert values(source.read(NOW)) == {
        Metric.ENERGY_EXPORT_WH: 1_234_567, Metric.ENERGY_IMPORT_WH: 8_910,
        Metric.ACTIVE_POWER_W: 15000,  # meter W -1500 × 10 with positive = import: 15 kW exported
        Metric.FREQUENCY_HZ: pytest.approx(49.98)}
    assert source.identity == {"Mn": "Acme", "Md": "M-1", "SN": "A123", "Vr": ""}


def test_energy_registers_are_exact_integers() -> None:
    readings = values(source_for(FakeDevice(sunspec_map(40000, [COMMON, METER]))).read(NOW))
    assert isinstance(readings[Metric.ENERGY_EXPORT_WH], int)


@pytest.mark.parametrize("base", [0, 50000])
def test_discovers_the_alternative_base_addresses(base: int) -> None:
    source = source_for(FakeDevice(sunspec_map(base, [COMMON, METER])))
    assert values(source.read(NOW))[Metric.ENERGY_EXPORT_WH] == 1_234_567
    assert [h.address for h in source.discover()] == [base + 2, base + 2 + 68]


def test_the_map_is_discovered_once_and_cached() -> None:
    device = FakeDevice(sunspec_map(40000, [COMMON, METER]))
    source = source_for(device)
    source.read(NOW)
    reads = len(device.reads)
    source.read(NOW)
    assert len(device.reads) - reads == 1, "one read per mapped model, no rediscovery"


def test_no_marker_anywhere_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="no SunSpec marker"):
        source_for(FakeDevice({40000 + i: 0 for i in range(10)})).read(NOW)


def test_a_map_without_end_model_ends_where_the_registers_end() -> None:
    source = source_for(FakeDevice(sunspec_map(40000, [COMMON, METER], end=False)))
    assert values(source.read(NOW))[Metric.ENERGY_IMPORT_WH] == 8_910


def test_unknown_models_are_skipped() -> None:
    mppt = [160, 4, 0, 0, 0, 0]  # a model we do not map, before the meter
    device = FakeDevice(sunspec_map(40000, [COMMON], raw_models=[mppt, encode_model(*METER)]))
    assert values(source_for(device).read(NOW))[Metric.ENERGY_EXPORT_WH] == 1_234_567


def test_without_a_meter_the_inverter_counter_is_the_energy() -> None:
    readings = values(source_for(FakeDevice(sunspec_map(40000, [COMMON, INVERTER]))).read(NOW))
    assert readings == {Metric.ENERGY_EXPORT_WH: 20_000_000, Metric.ACTIVE_POWER_W: 15000,
                        Metric.FREQUENCY_HZ: pytest.approx(50.01)}


def test_meter_power_sign_convention_is_configurable() -> None:
    source = source_for(FakeDevice(sunspec_map(40000, [COMMON, METER])), meter_power_positive="export")
    assert values(source.read(NOW))[Metric.ACTIVE_POWER_W] == -15000


def test_not_implemented_points_give_no_reading() -> None:
    meter: Model = (203, {**METER[1], "Hz": None, "Hz_SF": None})
    readings = values(source_for(FakeDevice(sunspec_map(40000, [COMMON, meter]))).read(NOW))
    assert Metric.FREQUENCY_HZ not in readings
    assert readings[Metric.ENERGY_EXPORT_WH] == 1_234_567


def test_irradiance_and_met_models() -> None:
    blocks = [ModelBlock(302, 0, tuple(encode_model(302, {"GHI": 700, "POAI": 812}))),
              ModelBlock(308, 0, tuple(encode_model(308, {"TmpBOM": 412, "TmpAmb": -35, "WndSpd": 7})))]
    assert values(readings_from_models(blocks, NOW)) == {
        Metric.IRRADIANCE_W_M2: 812, Metric.MODULE_TEMPERATURE_C: pytest.approx(41.2),
        Metric.AMBIENT_TEMPERATURE_C: pytest.approx(-3.5), Metric.WIND_SPEED_M_S: 7}


def test_a_negative_energy_scale_factor_truncates_to_whole_wh() -> None:
    block = ModelBlock(203, 0, tuple(encode_model(203, {"TotWhExp": 12345, "TotWhImp": 9, "TotWh_SF": -1})))
    assert values(readings_from_models([block], NOW)) == {Metric.ENERGY_EXPORT_WH: 1234,
                                                          Metric.ENERGY_IMPORT_WH: 0}


def test_an_impossible_instantaneous_value_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    block = ModelBlock(308, 0, tuple(encode_model(308, {"TmpAmb": 3000})))  # 300 °C
    with caplog.at_level(logging.WARNING):
        assert readings_from_models([block], NOW) == []
    assert "ambient_temperature_c" in caplog.text


def test_scale_factor_not_implemented_for_an_implemented_point_is_a_source_error() -> None:
    meter: Model = (203, {**METER[1], "W_SF": None})
    with pytest.raises(SourceError, match=r"invalid SunSpec data.*W_SF"):
        source_for(FakeDevice(sunspec_map(40000, [COMMON, meter]))).read(NOW)


def test_a_model_shorter_than_its_definition_is_a_source_error() -> None:
    short = [203, 50] + [0] * 50
    with pytest.raises(SourceError, match="L=50"):
        source_for(FakeDevice(sunspec_map(40000, [COMMON], raw_models=[short]))).read(NOW)


def test_the_map_must_start_with_the_common_model() -> None:
    with pytest.raises(SourceError, match="common model"):
        source_for(FakeDevice(sunspec_map(40000, [METER]))).read(NOW)


def test_connection_failure_then_recovery_with_rediscovery() -> None:
    device = FakeDevice(sunspec_map(40000, [COMMON, METER]))
    source = source_for(device)
    source.read(NOW)
    device.down = True
    with pytest.raises(SourceError, match=r"meter\.test:502.*connection refused"):
        source.read(NOW)
    assert device.closed == 1
    device.down = False
    device.reads.clear()
    assert values(source.read(NOW))[Metric.ENERGY_EXPORT_WH] == 1_234_567
    assert device.reads[0] == (40000, 2), "the map is discovered again after a failure"


def test_a_modbus_exception_is_a_source_error() -> None:
    device = FakeDevice(sunspec_map(40000, [COMMON, METER]))
    source = source_for(device)
    source.read(NOW)
    device.exception = 4
    with pytest.raises(SourceError, match="Modbus exception 4"):
        source.read(NOW)
