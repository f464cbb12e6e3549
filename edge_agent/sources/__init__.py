"""Meter sources: where a device's readings come from (SunSpec Modbus TCP, CSV replay, simulation)."""

from __future__ import annotations

from typing import Protocol

from protocol.envelope import Reading


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
