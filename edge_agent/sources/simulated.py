"""An in-process meter source backed by the simulators: a PV plant or wind turbine, optionally with
meter faults. Every reading carries `Quality.SIMULATED`, so simulated energy is never credited.

Imported only when a simulated source is configured, so an agent reading real meters never loads
the simulators.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.sources import SourceError
from edge_agent.sources.config import SimulatedSourceConfig
from protocol.envelope import Reading
from protocol.metrics import Metric, Quality
from simulators.faults import FaultInjector, FaultWindow, MeterFault, MeterUnavailable
from simulators.plant import Plant, PlantConfig, PlantKind, PlantSnapshot


def snapshot_readings(snap: PlantSnapshot, *, quality: int = Quality.SIMULATED) -> list[Reading]:
    """What the device's meters and sensors report, stamped with the device's own clock."""
    ts = snap.device_time_ms
    values: list[tuple[Metric, int | float | None]] = [
        (Metric.ENERGY_IMPORT_WH, snap.import_wh),
        (Metric.ENERGY_EXPORT_WH, snap.export_wh),
        (Metric.ACTIVE_POWER_W, round(snap.net_power_w)),
        (Metric.IRRADIANCE_W_M2, _rounded(snap.irradiance_w_m2, 1)),
        (Metric.WIND_SPEED_M_S, _rounded(snap.wind_speed_m_s, 2)),
        (Metric.AMBIENT_TEMPERATURE_C, round(snap.ambient_temperature_c, 1)),
        (Metric.MODULE_TEMPERATURE_C, _rounded(snap.module_temperature_c, 1)),
        (Metric.FREQUENCY_HZ, round(snap.frequency_hz, 3)),
    ]
    return [Reading(int(metric), ts, value, int(quality)) for metric, value in values if value is not None]


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class SimulatedSource:
    """A `MeterSource` over a simulated plant. The plant starts at `origin_ms`, or at the first
    read when that is None (then a rebuilt source restarts its registers: configure a start)."""

    def __init__(self, config: PlantConfig, faults: Sequence[FaultWindow] = (), *,
                 origin_ms: int | None = None) -> None:
        self.config = config
        self.faults = tuple(faults)
        self._plant: FaultInjector | None = None
        if origin_ms is not None:
            self._plant = FaultInjector(Plant(config, origin_ms), self.faults)

    @classmethod
    def from_config(cls, config: SimulatedSourceConfig) -> SimulatedSource:
        plant = PlantConfig(PlantKind(config.kind), config.seed, capacity_w=config.capacity_w,
                            lat_deg=config.lat, lon_deg=config.lon, step_s=config.step_s,
                            weather_seed=config.weather_seed)
        faults = [FaultWindow(MeterFault(f.fault), _ms(f.start.timestamp()), _ms(f.end.timestamp()),
                              magnitude=f.magnitude, donor_seed=f.donor_seed) for f in config.faults]
        origin = None if config.start is None else _ms(config.start.timestamp())
        return cls(plant, faults, origin_ms=origin)

    def plant(self, now_ms: int) -> FaultInjector:
        """The simulated plant behind this source (created at the first read if need be)."""
        if self._plant is None:
            origin = now_ms - now_ms % (self.config.step_s * 1000)
            self._plant = FaultInjector(Plant(self.config, origin), self.faults)
        return self._plant

    def snapshot(self, now_ms: int) -> PlantSnapshot:
        """Everything the simulated meter shows at `now_ms`; raises SourceError in an outage."""
        try:
            return self.plant(now_ms).snapshot(now_ms)
        except (MeterUnavailable, ValueError) as e:  # ValueError: a time before the plant's origin
            raise SourceError(f"simulated {self.config.kind} seed {self.config.seed}: {e}") from e

    def gateway_offline(self, now_ms: int) -> bool:
        """Whether a `gateway_offline` fault says the uplink is down (the fleet honours it)."""
        return self.plant(now_ms).gateway_offline(now_ms)

    def read(self, now_ms: int) -> list[Reading]:
        return snapshot_readings(self.snapshot(now_ms))

    def close(self) -> None:
        """Nothing to release: the plant lives in memory."""


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
