"""Configuration of a device's meter source: a pydantic union discriminated by `type`.

In the agent's TOML file each device has a `source` table, for example::

    [devices.source]
    type = "sunspec"
    host = "192.168.1.50"
    unit_id = 1

    [devices.source]
    type = "csv"
    path = "recordings/inv-1.csv"      # relative to the configuration file

    [devices.source]
    type = "simulated"
    kind = "pv"
    seed = 7
    start = 2025-06-21T00:00:00Z
    faults = [{fault = "frozen_register", start = 2025-06-21T10:00:00Z, end = 2025-06-21T12:00:00Z}]

Validate a table with `SOURCE_CONFIG.validate_python(table)`; pass `context={"base_dir": dir}` to
resolve a relative CSV path against `dir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

# The names of simulators.faults.MeterFault and those taking a magnitude, repeated so that
# validating a configuration never imports the simulators (a test keeps them equal).
FaultName = Literal["meter_outage", "gateway_offline", "clock_drift", "frozen_register", "spike",
                    "night_generation", "duplicated_pattern"]
FAULTS_WITH_MAGNITUDE = frozenset({"clock_drift", "spike", "night_generation"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SunSpecSourceConfig(_Model):
    """A SunSpec inverter or meter over Modbus TCP."""

    type: Literal["sunspec"] = "sunspec"
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)  # behind a Modbus gateway: the meter's bus address
    timeout_s: float = Field(default=3.0, gt=0)
    meter_power_positive: Literal["import", "export"] = "import"  # what a positive meter W means


class CsvSourceConfig(_Model):
    """Recorded readings replayed one interval per read (format: edge_agent.sources.csv_replay)."""

    type: Literal["csv"] = "csv"
    path: Path
    restamp: bool = False  # stamp readings with the agent's time instead of the recorded one

    @field_validator("path")
    @classmethod
    def _relative_to_config(cls, path: Path, info: ValidationInfo) -> Path:
        base = info.context.get("base_dir") if isinstance(info.context, dict) else None
        return Path(base, path) if base is not None and not path.is_absolute() else path


class FaultConfig(_Model):
    """A meter fault active from `start` (inclusive) to `end` (see simulators.faults)."""

    fault: FaultName
    start: AwareDatetime
    end: AwareDatetime
    magnitude: float | None = None
    donor_seed: int | None = None  # duplicated_pattern: the seed of the device whose data is replayed

    @model_validator(mode="after")
    def _check(self) -> FaultConfig:
        if self.end <= self.start:
            raise ValueError(f"{self.fault}: end must be after start")
        if (self.fault == "duplicated_pattern") != (self.donor_seed is not None):
            raise ValueError("donor_seed is required by duplicated_pattern and meaningless otherwise")
        if self.magnitude is not None and self.fault not in FAULTS_WITH_MAGNITUDE:
            raise ValueError(f"{self.fault} takes no magnitude")
        return self


class SimulatedSourceConfig(_Model):
    """A simulated PV plant or wind turbine with its revenue meter (see simulators)."""

    type: Literal["simulated"] = "simulated"
    kind: Literal["pv", "wind"]
    seed: int = 0
    capacity_w: float = Field(default=1_000_000.0, gt=0)  # AC nameplate (PV) or rated power (wind)
    lat: float = Field(default=37.5, ge=-90, le=90)
    lon: float = Field(default=105.0, ge=-180, le=180)
    # The simulated plant starts here, so an agent restarted later continues the same registers;
    # None starts it at the first read.
    start: AwareDatetime | None = None
    step_s: int = Field(default=60, ge=1)
    weather_seed: int | None = None  # devices sharing it see the same weather (one site)
    faults: tuple[FaultConfig, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> SimulatedSourceConfig:
        if self.kind != "pv" and any(f.fault == "night_generation" for f in self.faults):
            raise ValueError("night_generation is a PV fault")
        return self


SourceConfig = Annotated[SunSpecSourceConfig | CsvSourceConfig | SimulatedSourceConfig,
                         Field(discriminator="type")]
SOURCE_CONFIG: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)
