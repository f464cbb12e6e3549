"""Meter-level faults injected over time windows: what a broken or dishonest meter shows.

`FaultInjector` wraps a plant and applies `FaultWindow`s to its snapshots, so the simulated source
and the SunSpec server show the same faulty data. Each fault leaves the signature that a
plausibility check in METHODOLOGY.md looks for. Like the plant, the result is a function of the
simulated time only, never of how often or in which order it is queried.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace

from simulators.plant import Plant, PlantConfig, PlantKind, PlantSnapshot
from simulators.solar import sun_position

_HOUR_MS = 3_600_000


class MeterFault(enum.StrEnum):
    METER_OUTAGE = "meter_outage"
    GATEWAY_OFFLINE = "gateway_offline"
    CLOCK_DRIFT = "clock_drift"
    FROZEN_REGISTER = "frozen_register"
    SPIKE = "spike"
    NIGHT_GENERATION = "night_generation"
    DUPLICATED_PATTERN = "duplicated_pattern"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]

    @property
    def default_magnitude(self) -> float | None:
        """The magnitude of a window that gives none; None: this fault takes no magnitude."""
        return _DEFAULT_MAGNITUDES.get(self)


_DESCRIPTIONS = {
    MeterFault.METER_OUTAGE: "the meter does not answer: reads fail (SourceError, or a Modbus exception)",
    MeterFault.GATEWAY_OFFLINE: "the gateway loses its uplink: the meter is read, publishing waits",
    MeterFault.CLOCK_DRIFT: "the device clock runs fast: its offset grows by `magnitude` seconds per hour",
    MeterFault.FROZEN_REGISTER: "the energy registers stop changing while power is still flowing",
    MeterFault.SPIKE: "one absurd jump: power and exported energy rise by `magnitude` × capacity (× 1 h)",
    MeterFault.NIGHT_GENERATION: "PV export fabricated at night at `magnitude` × capacity",
    MeterFault.DUPLICATED_PATTERN: "the device replays the interval energy of the device seeded `donor_seed`",
}
_DEFAULT_MAGNITUDES = {
    MeterFault.CLOCK_DRIFT: 600.0,
    MeterFault.SPIKE: 20.0,
    MeterFault.NIGHT_GENERATION: 0.3,
}


@dataclass(frozen=True)
class FaultWindow:
    """`fault` is active for start_ms <= t < end_ms."""

    fault: MeterFault
    start_ms: int
    end_ms: int
    magnitude: float | None = None  # see MeterFault.description; None takes the default
    donor_seed: int | None = None  # DUPLICATED_PATTERN: whose pattern is replayed

    def __post_init__(self) -> None:
        object.__setattr__(self, "fault", MeterFault(self.fault))
        if self.end_ms <= self.start_ms:
            raise ValueError(f"{self.fault}: the window must end after it starts")
        if (self.fault is MeterFault.DUPLICATED_PATTERN) != (self.donor_seed is not None):
            raise ValueError("donor_seed is required by duplicated_pattern and meaningless otherwise")
        if self.magnitude is not None and self.fault.default_magnitude is None:
            raise ValueError(f"{self.fault} takes no magnitude")

    def contains(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms

    @property
    def strength(self) -> float:
        """The magnitude in effect (see MeterFault.description for its unit)."""
        value = self.magnitude if self.magnitude is not None else self.fault.default_magnitude
        if value is None:
            raise ValueError(f"{self.fault} takes no magnitude")
        return value


class MeterUnavailable(Exception):
    """The simulated meter does not answer (a METER_OUTAGE window is active)."""


class FaultInjector:
    """A plant as its faulty meter shows it. Implements `PlantLike`, like the plant it wraps."""

    def __init__(self, plant: Plant, windows: Sequence[FaultWindow] = ()) -> None:
        self._plant = plant
        self.windows = tuple(sorted(windows, key=lambda w: w.start_ms))
        for w in self.windows:
            if w.fault is MeterFault.NIGHT_GENERATION and plant.config.kind is not PlantKind.PV:
                raise ValueError("night_generation is a PV fault")
        self._donors = {w: Plant(replace(plant.config, seed=w.donor_seed), plant.origin_ms)
                        for w in self.windows if w.donor_seed is not None}
        # (window, time) -> (own snapshot, donor snapshot): register values at window edges.
        self._anchors: dict[tuple[FaultWindow, int], tuple[PlantSnapshot, PlantSnapshot | None]] = {}
        # window -> (until_ms, night milliseconds since its start): NIGHT_GENERATION's running total.
        self._night: dict[FaultWindow, tuple[int, int]] = {}

    @property
    def config(self) -> PlantConfig:
        return self._plant.config

    def gateway_offline(self, t_ms: int) -> bool:
        """True while a GATEWAY_OFFLINE window is active: the fleet or agent stops publishing."""
        return any(w.fault is MeterFault.GATEWAY_OFFLINE and w.contains(t_ms) for w in self.windows)

    def snapshot(self, t_ms: int) -> PlantSnapshot:
        """The meter's view at `t_ms`; raises MeterUnavailable during an outage."""
        if any(w.fault is MeterFault.METER_OUTAGE and w.contains(t_ms) for w in self.windows):
            raise MeterUnavailable(f"meter outage at {t_ms}")
        self._compute_anchors(t_ms)
        snap = self._plant.snapshot(t_ms)
        for w in self.windows:
            if w.start_ms > t_ms:
                break
            snap = self._apply(w, snap)
        return snap

    def _compute_anchors(self, t_ms: int) -> None:
        # In time order, so the plants step forward instead of replaying from their origin.
        due = sorted(((at, w) for w in self.windows if w.fault in _ANCHORED for at in self._edges(w)
                      if at <= t_ms and (w, at) not in self._anchors), key=lambda pair: pair[0])
        for at, w in due:
            donor = self._donors.get(w)
            self._anchors[w, at] = (self._plant.snapshot(at), donor.snapshot(at) if donor else None)

    def _edges(self, w: FaultWindow) -> tuple[int, ...]:
        start, end = max(w.start_ms, self._plant.origin_ms), max(w.end_ms, self._plant.origin_ms)
        return (start, end) if w.fault is MeterFault.DUPLICATED_PATTERN else (start,)

    def _apply(self, w: FaultWindow, snap: PlantSnapshot) -> PlantSnapshot:
        active = w.contains(snap.time_ms)
        match w.fault:
            case MeterFault.CLOCK_DRIFT if active:
                offset_ms = round(w.strength * 1000 * (snap.time_ms - w.start_ms) / _HOUR_MS)
                return replace(snap, clock_offset_ms=snap.clock_offset_ms + offset_ms)
            case MeterFault.FROZEN_REGISTER if active:
                held, _ = self._anchors[w, self._edges(w)[0]]
                return replace(snap, export_wh=held.export_wh, import_wh=held.import_wh)
            case MeterFault.SPIKE if active:
                jump_w = w.strength * snap.capacity_w
                # The export register jumps by an hour's worth of the spike power.
                return replace(snap, net_power_w=snap.net_power_w + jump_w,
                               export_wh=snap.export_wh + round(jump_w))
            case MeterFault.NIGHT_GENERATION:
                return self._night_generation(w, snap)
            case MeterFault.DUPLICATED_PATTERN:
                return self._duplicated_pattern(w, snap)
        return snap

    def _duplicated_pattern(self, w: FaultWindow, snap: PlantSnapshot) -> PlantSnapshot:
        """Inside the window the register increments are the donor's; afterwards the device counts
        its own energy again on top of the replayed total, so its registers never go backwards."""
        start, end = self._edges(w)
        own_start, donor_start = self._anchors[w, start]
        assert donor_start is not None  # every DUPLICATED_PATTERN window has a donor
        if snap.time_ms < w.end_ms:
            donor = self._donors[w].snapshot(snap.time_ms)
            return replace(snap, net_power_w=donor.net_power_w, generation_w=donor.generation_w,
                           export_wh=own_start.export_wh + donor.export_wh - donor_start.export_wh,
                           import_wh=own_start.import_wh + donor.import_wh - donor_start.import_wh)
        own_end, donor_end = self._anchors[w, end]
        assert donor_end is not None
        return replace(
            snap,
            export_wh=snap.export_wh + (donor_end.export_wh - donor_start.export_wh)
            - (own_end.export_wh - own_start.export_wh),
            import_wh=snap.import_wh + (donor_end.import_wh - donor_start.import_wh)
            - (own_end.import_wh - own_start.import_wh))

    def _night_generation(self, w: FaultWindow, snap: PlantSnapshot) -> PlantSnapshot:
        """Fabricated export whenever the sun is down inside the window; the fabricated energy
        stays in the register after the window (that is the point of the fraud)."""
        fake_w = w.strength * snap.capacity_w
        fabricated_wh = fake_w * self._night_ms(w, min(snap.time_ms, w.end_ms)) / _HOUR_MS
        if w.contains(snap.time_ms) and snap.sun_elevation_deg < 0:
            snap = replace(snap, net_power_w=snap.net_power_w + fake_w,
                           generation_w=snap.generation_w + fake_w)
        return replace(snap, export_wh=snap.export_wh + int(fabricated_wh))

    def _night_ms(self, w: FaultWindow, until_ms: int) -> int:
        """Milliseconds of night in [w.start_ms, until_ms). Night is decided once per plant step, at
        the step's grid point, as the plant holds power constant over a step: the total is the
        same however the interval is split between queries."""
        c = self.config
        step_ms = c.step_s * 1000
        t, night = self._night.get(w, (w.start_ms, 0))
        if until_ms < t:
            t, night = w.start_ms, 0
        while t < until_ms:
            grid = t - (t - self._plant.origin_ms) % step_ms
            end = min(grid + step_ms, until_ms)
            if sun_position(c.lat_deg, c.lon_deg, grid).elevation_deg < 0:
                night += end - t
            t = end
        self._night[w] = (t, night)
        return night


_ANCHORED = frozenset({MeterFault.FROZEN_REGISTER, MeterFault.DUPLICATED_PATTERN})
