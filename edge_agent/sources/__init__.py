"""Meter sources: where a device's readings come from (SunSpec Modbus TCP, CSV replay, simulation)."""

from __future__ import annotations

from typing import Protocol

from edge_agent.sources.config import (
    SOURCE_CONFIG,
    CsvSourceConfig,
    FaultConfig,
    SimulatedSourceConfig,
    SourceConfig,
    SunSpecSourceConfig,
)
from protocol.envelope import Reading

__all__ = [
    "SOURCE_CONFIG", "CsvSourceConfig", "FaultConfig", "MeterSource", "SimulatedSourceConfig", "SourceConfig",
    "SourceError", "SunSpecSourceConfig", "build_source",
]


class MeterSource(Protocol):
    """One device's meters. `read` returns one snapshot of every register, stamped `now_ms`.

    `now_ms` comes from the agent's clock (simulated time in fleets), so sources never read the
    wall clock themselves. A failed read raises `SourceError`; the agent logs it and skips the
    interval (cumulative registers mean the energy is still counted at the next good read).
    """

    def read(self, now_ms: int) -> list[Reading]: ...

    def close(self) -> None: ...


class SourceError(Exception):
    """The meter could not be read (connection refused, timeout, invalid register values)."""


def build_source(config: SourceConfig) -> MeterSource:
    """Open the source a validated configuration describes (see edge_agent.sources.config).

    Each kind's module is imported here, on demand: a gateway reading SunSpec meters never loads
    the simulators, and one replaying CSV never loads pymodbus.
    """
    match config:
        case SunSpecSourceConfig():
            from edge_agent.sources.sunspec import SunSpecSource

            return SunSpecSource(config.host, config.port, unit_id=config.unit_id, timeout_s=config.timeout_s,
                                 meter_power_positive=config.meter_power_positive)
        case CsvSourceConfig():
            from edge_agent.sources.csv_replay import CsvReplaySource

            return CsvReplaySource(config.path, restamp=config.restamp)
        case SimulatedSourceConfig():
            from edge_agent.sources.simulated import SimulatedSource

            return SimulatedSource.from_config(config)
    raise TypeError(f"not a source configuration: {config!r}")
