"""A SunSpec device over Modbus TCP (pymodbus) as a `MeterSource`.

On first use the source discovers the device's SunSpec map (the "SunS" marker at 40000, else 0,
else 50000, then the model chain up to ID 0xFFFF), then every `read` fetches the models it maps
to protocol metrics (layouts in `sunspec_models`) and applies their scale factors:

============================ =========================================================
SunSpec point                 protocol metric
============================ =========================================================
meter 201-204 TotWhExp        ENERGY_EXPORT_WH (integer Wh)
meter 201-204 TotWhImp        ENERGY_IMPORT_WH
meter 201-204 W               ACTIVE_POWER_W, signed to "positive exports" (see below)
meter 201-204 Hz              FREQUENCY_HZ
inverter 101-103 WH, W, Hz    the same three, only when the device has no meter model
irradiance 302 POAI           IRRADIANCE_W_M2 (first sensor)
mini met 308 TmpBOM           MODULE_TEMPERATURE_C
mini met 308 TmpAmb, WndSpd   AMBIENT_TEMPERATURE_C, WIND_SPEED_M_S
============================ =========================================================

Energy comes from the revenue meter when there is one: an inverter's WH counts gross AC output,
before the plant's own consumption. Vendors disagree on the sign of a meter's W, so
`meter_power_positive` says which direction a positive W means ("import": Fronius and the
SunSpec load convention; "export": SolarEdge). Points a device marks "not implemented" give no
reading; connection and decoding failures raise `SourceError`, after which the next read
reconnects and discovers the map again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pymodbus.client import ModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from edge_agent.sources import SourceError
from edge_agent.sources.sunspec_models import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    LAYOUTS,
    MAX_REGISTERS_PER_READ,
    SUNS_MARKER,
    InvalidRegisters,
    ModelBlock,
)
from protocol.envelope import Reading
from protocol.metrics import METRICS, Metric, MetricKind

log = logging.getLogger(__name__)

MAX_MODELS = 64  # a sane device has a handful; more means we are walking garbage

PowerDirection = Literal["import", "export"]
_MAPPED_MODELS = frozenset(LAYOUTS) - {1}  # the common model is read once, at discovery


@dataclass(frozen=True)
class ModelHeader:
    model_id: int
    address: int  # of the model's ID register
    length: int  # L

    @property
    def size(self) -> int:
        return self.length + 2


class RegisterClient(Protocol):
    """What the source needs of a Modbus client: pymodbus's sync clients (TCP, or serial for RS-485)."""

    def read_holding_registers(self, address: int, *, count: int = 1, device_id: int = 1,
                               no_response_expected: bool = False) -> ModbusPDU: ...

    def close(self) -> None: ...


class _IllegalAddress(Exception):
    """The device answered "illegal data address": probing found nothing there."""


def readings_from_models(blocks: Sequence[ModelBlock], now_ms: int, *,
                         meter_power_positive: PowerDirection = "import") -> list[Reading]:
    """Map decoded SunSpec models to protocol readings stamped `now_ms` (see the module doc)."""
    values: dict[Metric, int | float] = {}
    by_kind: dict[str, ModelBlock] = {}  # layout name: "meter" for 201-204, "inverter" for 101-103
    for block in blocks:  # the first model of each kind wins (a device with two meters: the first)
        by_kind.setdefault(block.layout.name, block)
    meter, inverter = by_kind.get("meter"), by_kind.get("inverter")
    if meter is not None:
        _put(values, Metric.ENERGY_EXPORT_WH, meter.value("TotWhExp"))
        _put(values, Metric.ENERGY_IMPORT_WH, meter.value("TotWhImp"))
        power = meter.value("W")
        _put(values, Metric.ACTIVE_POWER_W,
             -power if power is not None and meter_power_positive == "import" else power)
        _put(values, Metric.FREQUENCY_HZ, meter.value("Hz"))
    elif inverter is not None:
        _put(values, Metric.ENERGY_EXPORT_WH, inverter.value("WH"))
        _put(values, Metric.ACTIVE_POWER_W, inverter.value("W"))
        _put(values, Metric.FREQUENCY_HZ, inverter.value("Hz"))
    if (irradiance := by_kind.get("irradiance")) is not None:
        _put(values, Metric.IRRADIANCE_W_M2, irradiance.value("POAI"))
    if (met := by_kind.get("mini_met")) is not None:
        _put(values, Metric.MODULE_TEMPERATURE_C, met.value("TmpBOM"))
        _put(values, Metric.AMBIENT_TEMPERATURE_C, met.value("TmpAmb"))
        _put(values, Metric.WIND_SPEED_M_S, met.value("WndSpd"))
    return [Reading(int(metric), now_ms, value) for metric, value in sorted(values.items())]


def _put(values: dict[Metric, int | float], metric: Metric, value: int | float | None) -> None:
    if value is None:
        return
    info = METRICS[metric]
    if info.kind is MetricKind.CUMULATIVE:
        # Registers are whole Wh; a negative scale factor leaves a fraction, which we truncate
        # like the meter's own display does (never rounding energy up).
        value = math.floor(value)
    if not info.min_value <= value <= info.max_value:
        if info.kind is MetricKind.CUMULATIVE:
            raise InvalidRegisters(f"{info.name} {value} is impossible")
        log.warning("sunspec: dropping impossible %s %s", info.name, value)
        return
    values[metric] = value


def _exception_name(code: int) -> str:
    try:
        return ExcCodes(code).name
    except ValueError:
        return "unknown"


class SunSpecSource:
    """One SunSpec device (inverter and/or meter) at `host:port`, Modbus unit `unit_id`.

    `client` replaces the Modbus TCP client made from host and port, e.g. by a pymodbus
    `ModbusSerialClient` for a meter on RS-485 (host and port then only name the device in errors).
    """

    def __init__(self, host: str, port: int = 502, *, unit_id: int = 1, timeout_s: float = 3.0,
                 meter_power_positive: PowerDirection = "import",
                 client: RegisterClient | None = None) -> None:
        self.host, self.port, self.unit_id = host, port, unit_id
        self.meter_power_positive = meter_power_positive
        # One retry: a dead meter costs two timeouts per read, not pymodbus's default four.
        self._client = client or ModbusTcpClient(host, port=port, timeout=timeout_s, retries=1)
        self._models: tuple[ModelHeader, ...] | None = None
        self.identity: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"SunSpecSource({self.host}:{self.port}, unit {self.unit_id})"

    def read(self, now_ms: int) -> list[Reading]:
        try:
            blocks = [self._read_block(h) for h in self.discover() if h.model_id in _MAPPED_MODELS]
            return readings_from_models(blocks, now_ms, meter_power_positive=self.meter_power_positive)
        except (InvalidRegisters, _IllegalAddress) as e:
            self._forget()
            raise SourceError(f"{self!r}: invalid SunSpec data: {e}") from e
        except SourceError:
            self._forget()
            raise

    def discover(self) -> tuple[ModelHeader, ...]:
        """The device's model chain (cached until a read fails); raises SourceError."""
        if self._models is not None:
            return self._models
        base = self._find_base()
        models: list[ModelHeader] = []
        address = base + len(SUNS_MARKER)
        while len(models) < MAX_MODELS:
            try:
                model_id, length = self._registers(address, 2)
            except _IllegalAddress:
                break  # some devices omit the end model; the map ends where the registers do
            if model_id == END_MODEL_ID:
                break
            models.append(ModelHeader(model_id, address, length))
            address += 2 + length
        else:
            raise SourceError(f"{self!r}: more than {MAX_MODELS} SunSpec models: not a SunSpec map")
        if not models or models[0].model_id != 1:
            raise SourceError(f"{self!r}: the SunSpec map does not start with the common model (1)")
        self.identity = self._identity(models[0])
        log.info("sunspec: %r is %s; models %s", self, self.identity,
                 [(m.model_id, m.address) for m in models])
        self._models = tuple(models)
        return self._models

    def close(self) -> None:
        self._forget()

    def _find_base(self) -> int:
        for base in BASE_ADDRESSES:
            try:
                if tuple(self._registers(base, 2)) == SUNS_MARKER:
                    return base
            except _IllegalAddress:
                continue
        raise SourceError(f"{self!r}: no SunSpec marker 'SunS' at {', '.join(map(str, BASE_ADDRESSES))}")

    def _identity(self, common: ModelHeader) -> dict[str, str]:
        block = self._read_block(common)
        return {name: str(block.raw(name) or "") for name in ("Mn", "Md", "SN", "Vr")}

    def _read_block(self, header: ModelHeader) -> ModelBlock:
        layout = LAYOUTS[header.model_id]
        needed = layout.length - 1 if header.model_id == 1 else layout.length  # older common models lack Pad
        if header.length < needed:
            raise InvalidRegisters(f"model {header.model_id} at {header.address} has L={header.length}, "
                                   f"needs {needed}")
        registers: list[int] = []
        while len(registers) < header.size:
            count = min(MAX_REGISTERS_PER_READ, header.size - len(registers))
            registers += self._registers(header.address + len(registers), count)
        return ModelBlock(header.model_id, header.address, tuple(registers))

    def _registers(self, address: int, count: int) -> list[int]:
        """Holding registers; the one place pymodbus errors become ours."""
        try:
            response = self._client.read_holding_registers(address, count=count, device_id=self.unit_id)
        except (ModbusException, OSError) as e:
            raise SourceError(f"{self!r}: {e}") from e
        if response.isError():
            code = response.exception_code
            if code == ExcCodes.ILLEGAL_ADDRESS:
                raise _IllegalAddress(f"registers {address}-{address + count - 1}")
            raise SourceError(f"{self!r}: Modbus exception {code} ({_exception_name(code)}) reading "
                              f"{address}-{address + count - 1}")
        if len(response.registers) != count:
            raise SourceError(f"{self!r}: asked for {count} registers at {address}, "
                              f"got {len(response.registers)}")
        return list(response.registers)

    def _forget(self) -> None:
        # Drop the connection and the map: the device may have restarted with a different map.
        self._models = None
        self._client.close()
