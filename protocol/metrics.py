"""The metric registry: what a reading's metric code means, in which unit, and how it behaves.

Codes are small integers on the wire and never change meaning; new metrics take new codes.
Energy comes from cumulative registers (revenue-meter OBIS 1.8.0 / 2.8.0), so interval energy is a
register difference and a lost interval loses only time resolution, never energy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MetricKind(enum.Enum):
    CUMULATIVE = "cumulative"  # monotonically non-decreasing register; use differences
    INSTANTANEOUS = "instantaneous"  # a sample at the reading's timestamp


class Metric(enum.IntEnum):
    """Wire codes of the metrics (readings carry the integer)."""

    ENERGY_IMPORT_WH = 1
    ENERGY_EXPORT_WH = 2
    ACTIVE_POWER_W = 3
    IRRADIANCE_W_M2 = 4
    WIND_SPEED_M_S = 5
    AMBIENT_TEMPERATURE_C = 6
    MODULE_TEMPERATURE_C = 7
    FREQUENCY_HZ = 8


@dataclass(frozen=True)
class MetricInfo:
    metric: Metric
    name: str
    unit: str
    kind: MetricKind
    obis: str | None
    # Physically possible range; values outside it are impossible, not merely implausible.
    min_value: float
    max_value: float
    description: str


_INFO = (
    MetricInfo(Metric.ENERGY_IMPORT_WH, "energy_import_wh", "Wh", MetricKind.CUMULATIVE, "1.8.0",
               0, 2**63 - 1, "cumulative active energy imported from the grid"),
    MetricInfo(Metric.ENERGY_EXPORT_WH, "energy_export_wh", "Wh", MetricKind.CUMULATIVE, "2.8.0",
               0, 2**63 - 1, "cumulative active energy exported to the grid"),
    MetricInfo(Metric.ACTIVE_POWER_W, "active_power_w", "W", MetricKind.INSTANTANEOUS, "16.7.0",
               -1e10, 1e10, "net active power, positive when exporting"),
    MetricInfo(Metric.IRRADIANCE_W_M2, "irradiance_w_m2", "W/m²", MetricKind.INSTANTANEOUS, None,
               0, 2000, "plane-of-array irradiance"),
    MetricInfo(Metric.WIND_SPEED_M_S, "wind_speed_m_s", "m/s", MetricKind.INSTANTANEOUS, None,
               0, 120, "hub-height wind speed"),
    MetricInfo(Metric.AMBIENT_TEMPERATURE_C, "ambient_temperature_c", "°C", MetricKind.INSTANTANEOUS, None,
               -90, 80, "ambient air temperature"),
    MetricInfo(Metric.MODULE_TEMPERATURE_C, "module_temperature_c", "°C", MetricKind.INSTANTANEOUS, None,
               -90, 150, "PV module (cell) temperature"),
    MetricInfo(Metric.FREQUENCY_HZ, "frequency_hz", "Hz", MetricKind.INSTANTANEOUS, "14.7.0",
               0, 100, "grid frequency"),
)

METRICS: dict[Metric, MetricInfo] = {info.metric: info for info in _INFO}
METRICS_BY_NAME: dict[str, MetricInfo] = {info.name: info for info in _INFO}


def metric_info(code: int) -> MetricInfo:
    """Look up a wire code; raises ValueError for an unknown code."""
    return METRICS[Metric(code)]


class Quality(enum.IntFlag):
    """Per-reading quality flags set by the edge agent (bit mask on the wire)."""

    GOOD = 0
    SOURCE_ERROR = 1  # the meter read failed or returned an invalid marker; value is the last good one
    CLOCK_UNSYNCED = 2  # the gateway clock was not synchronised when the reading was taken
    REGISTER_RESET = 4  # the register went backwards (meter replacement or rollover) at this reading
    ESTIMATED = 8  # not a measurement: substituted by the source
    SIMULATED = 16  # produced by a simulator, never to be credited


QUALITY_MASK = int(Quality.SOURCE_ERROR | Quality.CLOCK_UNSYNCED | Quality.REGISTER_RESET
                   | Quality.ESTIMATED | Quality.SIMULATED)
