"""Shared values and helpers of the simulator tests."""

from __future__ import annotations

from simulators.plant import Plant, PlantConfig, PlantSnapshot
from simulators.weather import Climate

START = 1_750_464_000_000  # 2025-06-21T00:00:00Z: solar noon at the default site (105° E) is ~05:02 UTC
MINUTE = 60_000
HOUR = 3_600_000
DAY = 24 * HOUR
CLEAR_SKY = Climate(cloud_bias=25.0)  # clearness ≈ 1 all the time


def series(config: PlantConfig, *, hours: float, every_ms: int, start: int = START) -> list[PlantSnapshot]:
    plant = Plant(config, start)
    return [plant.snapshot(t) for t in range(start, start + round(hours * HOUR) + 1, every_ms)]
