"""What the database layer fills for one project and one monitoring period.

The layer reads readings from the rollups or the raw table and hands them over as arrays. For exact
boundaries it should include, per register, the last usable reading at or before the period start and
the first at or after its end (the engine decides what they count for; nothing outside the period is
credited). Every main and check meter of the configuration must be present, with empty series if it
reported nothing: missing energy is then bounded conservatively, never assumed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mrv_engine.double_claim import Claim
from mrv_engine.net_generation import Settlement
from mrv_engine.series import ArrivalSeries, MeterReadings, SampleSeries
from mrv_engine.timespan import Span
from protocol.metrics import Metric


@dataclass(frozen=True, eq=False)
class PeriodData:
    period: Span  # [start_ms, end_ms] of the monitoring period
    meters: Mapping[str, MeterReadings]  # by meter id (configuration), registers in Wh
    # Instantaneous samples by (device id, metric): ACTIVE_POWER_W of meter devices, IRRADIANCE_W_M2 and
    # WIND_SPEED_M_S of the devices the meters' configuration names.
    samples: Mapping[tuple[str, Metric], SampleSeries] = field(default_factory=dict)
    arrivals: Mapping[str, ArrivalSeries] = field(default_factory=dict)  # by device id
    settlement: Settlement | None = None
    fuel_consumption: Mapping[str, float] = field(default_factory=dict)  # by auxiliary fuel id
    claims: tuple[Claim, ...] = ()  # this generation's claims under other schemes
    envelope_hashes: Sequence[str] = ()  # hex SHA-256 of every envelope whose readings are used
