"""A fleet of simulated plants in accelerated simulated time: N sites × M devices, one seed.

Every device is a `SimulatedSource` (a `MeterSource`) whose plant shares its site's weather, so
devices of one site are correlated but never identical. `Fleet.sources()` hands them to an edge
agent (simulators.fleet_agent); `Fleet.run()` drives them on its own, reading every device each
`interval_s` of simulated time and passing the readings to a sink, as fast as possible or at
`speed` × real time. A device inside a `gateway_offline` fault keeps being read, but its readings
are held back and delivered, in order, when its uplink returns: what the agent's outbox does.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from edge_agent.sources import SourceError
from edge_agent.sources.simulated import SimulatedSource
from protocol.envelope import Reading
from simulators.faults import FaultWindow
from simulators.plant import PlantConfig, PlantKind
from simulators.processes import derive_seed
from simulators.samples import DEFAULT_START_MS

SITE_SPREAD_DEG = 3.0  # sites scatter this far around the default location


class ReadingSink(Protocol):
    def __call__(self, device_id: str, now_ms: int, readings: list[Reading]) -> None:
        """Receive one device's readings taken at `now_ms` (possibly delivered later)."""
        ...


@dataclass(frozen=True)
class FleetConfig:
    plants: int = 2  # sites; they alternate PV and wind
    devices_per_plant: int = 2
    seed: int = 0
    start_ms: int = DEFAULT_START_MS
    interval_s: int = 60  # how often each device is read, in simulated seconds
    capacity_w: float = 1_000_000.0  # per device
    step_s: int = 60  # the plants' physics step
    faults: Mapping[str, Sequence[FaultWindow]] = field(default_factory=dict)  # device id -> windows

    def __post_init__(self) -> None:
        if self.plants < 1 or self.devices_per_plant < 1 or self.interval_s < 1:
            raise ValueError("a fleet needs at least one plant, one device each, and interval_s >= 1")


@dataclass(frozen=True)
class FleetDevice:
    device_id: str
    site: int
    config: PlantConfig
    faults: tuple[FaultWindow, ...] = ()


@dataclass
class FleetStats:
    start_ms: int
    now_ms: int
    devices: int
    ticks: int = 0
    reads: int = 0  # successful reads
    readings: int = 0  # delivered to the sink
    source_errors: int = 0  # failed reads (meter outages)
    held_back: int = 0  # reads taken while the device's gateway was offline
    still_held: int = 0  # of those, not delivered yet (the gateway is still offline)
    wall_s: float = 0.0

    @property
    def simulated_hours(self) -> float:
        return (self.now_ms - self.start_ms) / 3_600_000


def fleet_devices(config: FleetConfig) -> tuple[FleetDevice, ...]:
    """The fleet's devices, named p{site}-{kind}-{n} (e.g. p000-pv-01), in a fixed order."""
    kinds = tuple(PlantKind)
    devices = []
    for site in range(config.plants):
        kind = kinds[site % len(kinds)]
        rng = random.Random(derive_seed(config.seed, "site", site))
        lat = PlantConfig.lat_deg + rng.uniform(-SITE_SPREAD_DEG, SITE_SPREAD_DEG)
        lon = PlantConfig.lon_deg + rng.uniform(-SITE_SPREAD_DEG, SITE_SPREAD_DEG)
        for n in range(config.devices_per_plant):
            device_id = f"p{site:03d}-{kind}-{n:02d}"
            plant = PlantConfig(kind, derive_seed(config.seed, device_id), capacity_w=config.capacity_w,
                                lat_deg=lat, lon_deg=lon, step_s=config.step_s,
                                weather_seed=derive_seed(config.seed, "weather", site))
            devices.append(FleetDevice(device_id, site, plant, tuple(config.faults.get(device_id, ()))))
    unknown = set(config.faults) - {d.device_id for d in devices}
    if unknown:
        raise ValueError(f"faults name devices that are not in the fleet: {sorted(unknown)}")
    return tuple(devices)


class Fleet:
    """The devices a `FleetConfig` describes, as sources or run by `run` (see the module doc)."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.devices = fleet_devices(config)

    def sources(self) -> dict[str, SimulatedSource]:
        """A fresh source per device, every plant starting at the fleet's start time."""
        return {d.device_id: SimulatedSource(d.config, d.faults, origin_ms=self.config.start_ms)
                for d in self.devices}

    def run(self, hours: float, *, speed: float = 0.0, sink: ReadingSink | None = None,
            progress: Callable[[FleetStats], None] | None = None,
            sleep: Callable[[float], None] = time.sleep) -> FleetStats:
        """Read every device every `interval_s` for `hours` of simulated time from the start.

        `speed` 0 runs as fast as possible; otherwise simulated time runs `speed` times faster than
        real time. `progress` is called after each simulated hour and after the last read.
        """
        sources = self.sources()
        interval_ms = self.config.interval_s * 1000
        end_ms = self.config.start_ms + round(hours * 3_600_000)
        stats = FleetStats(self.config.start_ms, self.config.start_ms, len(sources))
        held: dict[str, list[tuple[int, list[Reading]]]] = {device_id: [] for device_id in sources}
        wall_start = time.monotonic()
        next_report = self.config.start_ms + 3_600_000
        for now_ms in range(self.config.start_ms, end_ms + 1, interval_ms):
            if speed > 0:
                lag_s = (now_ms - self.config.start_ms) / 1000 / speed - (time.monotonic() - wall_start)
                if lag_s > 0:
                    sleep(lag_s)
            for device_id, source in sources.items():
                self._read(device_id, source, now_ms, held[device_id], stats, sink)
            stats.ticks += 1
            stats.now_ms = now_ms
            stats.wall_s = time.monotonic() - wall_start
            stats.still_held = sum(len(batches) for batches in held.values())
            if progress and (now_ms >= next_report or now_ms + interval_ms > end_ms):
                progress(stats)
                next_report += 3_600_000
        return stats

    @staticmethod
    def _read(device_id: str, source: SimulatedSource, now_ms: int, held: list[tuple[int, list[Reading]]],
              stats: FleetStats, sink: ReadingSink | None) -> None:
        try:
            readings = source.read(now_ms)
        except SourceError:
            stats.source_errors += 1
            readings = []
        else:
            stats.reads += 1
        if source.gateway_offline(now_ms):
            if readings:
                held.append((now_ms, readings))
                stats.held_back += 1
            return
        batches = [*held, (now_ms, readings)] if readings else list(held)
        held.clear()
        for taken_ms, batch in batches:
            stats.readings += len(batch)
            if sink is not None:
                sink(device_id, taken_ms, batch)
