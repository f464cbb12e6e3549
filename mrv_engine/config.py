"""The project configuration: validated once, at the boundary, from a TOML document's dict.

Every number that enters a computation carries its source (`Sourced`: `{value = ..., source = "..."}`).
Dates are calendar days of the project's clock, a fixed UTC offset (`utc_offset_minutes`); a crediting
period's, a calibration's and an issued claim's dates are inclusive.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mrv_engine.double_claim import Claim, ClaimPolicy, Scheme, validate_claim
from mrv_engine.emission_factor import CombinedMargin, GridEmissionFactor
from mrv_engine.errors import ConfigError, DoubleClaimError
from mrv_engine.meter_error import Calibration, ErrorTimeline
from mrv_engine.methodologies import MethodologyConfig, ProjectFacts, methodology_for
from mrv_engine.net_generation import MeterRole, MeterSpec
from mrv_engine.provenance import Positive
from mrv_engine.technology import Technology
from mrv_engine.timespan import Span, day_end_ms, day_start_ms
from mrv_engine.units import exact
from protocol.ids import check_id

# IEC 62053-21/22 (GB/T 17215): the class index is the maximum permissible error in percent.
_ACCURACY_CLASS = re.compile(r"\d+(?:\.\d+)?S?")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CalibrationRecord(_Model):
    date: dt.date  # day of the test
    error_pct: float  # error found, percent, signed
    valid_until: dt.date  # last day the calibration is valid
    source: str = Field(min_length=3)  # calibration certificate or report reference

    @model_validator(mode="after")
    def _order(self) -> CalibrationRecord:
        if self.valid_until < self.date:
            raise ValueError(f"valid_until {self.valid_until} precedes the calibration date {self.date}")
        return self


class PowerCurve(_Model):
    """A turbine's (or a plant's) power curve: power at hub-height wind speed."""

    wind_speed_m_s: tuple[float, ...]
    power_kw: tuple[float, ...]
    source: str = Field(min_length=3)

    @model_validator(mode="after")
    def _shape(self) -> PowerCurve:
        speeds = self.wind_speed_m_s
        if len(speeds) < 2 or len(speeds) != len(self.power_kw):
            raise ValueError("a power curve needs at least two points, as many speeds as powers")
        if any(b <= a for a, b in itertools.pairwise(speeds)) or min(self.power_kw) < 0:
            raise ValueError("speeds must increase and powers must not be negative")
        return self


class MeterConfig(_Model):
    id: str
    role: MeterRole
    device_id: str  # the device id its envelopes are signed under
    accuracy_class: str  # e.g. 0.2S, 0.5S
    max_permissible_error_pct: float | None = Field(default=None, gt=0)  # default: the class index
    calibrations: tuple[CalibrationRecord, ...] = ()
    checks: str | None = None  # for a check meter: the id of the main meter it checks
    import_register: bool = True
    # Largest power through the meter either way (connection rating); default: its capacity.
    max_power_kw: float | None = Field(default=None, gt=0)
    register_modulus_wh: int | None = Field(default=None, gt=0)  # the register wraps to 0 here
    capacity_kw: float | None = Field(default=None, gt=0)  # generation behind it; default: nameplate
    irradiance_device: str | None = None  # for PV: the device reporting plane-of-array irradiance
    wind_speed_device: str | None = None  # for wind: the device reporting hub-height wind speed
    power_curve: PowerCurve | None = None

    @field_validator("id", "device_id", "checks", "irradiance_device", "wind_speed_device")
    @classmethod
    def _ids(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_id(value, str(info.field_name))

    @field_validator("accuracy_class")
    @classmethod
    def _class(cls, value: str) -> str:
        if not _ACCURACY_CLASS.fullmatch(value):
            raise ValueError(f"accuracy class {value!r} is not a class index such as 0.2S or 0.5")
        return value

    @model_validator(mode="after")
    def _role(self) -> MeterConfig:
        if (self.role is MeterRole.CHECK) != (self.checks is not None):
            raise ValueError("a check meter, and only a check meter, names the main meter it checks")
        return self

    @property
    def max_permissible(self) -> Fraction:
        pct = self.max_permissible_error_pct
        return exact(self.accuracy_class.rstrip("S") if pct is None else pct) / 100


class CreditingPeriod(_Model):
    start: dt.date
    end: dt.date  # inclusive
    number: int = Field(default=1, ge=1)  # 1 for the first crediting period, 2 for its first renewal

    @model_validator(mode="after")
    def _order(self) -> CreditingPeriod:
        if self.end < self.start:
            raise ValueError(f"the crediting period ends ({self.end}) before it starts ({self.start})")
        return self


class Site(_Model):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class Monitoring(_Model):
    interval_s: int = Field(gt=0)  # the meters' reading interval
    gap_intervals: int = Field(default=2, ge=1)  # a step longer than this many intervals is a gap
    settlement_tolerance: float = Field(default=0.0, ge=0)  # relative; 0: any lower invoice is used


class Plausibility(_Model):
    """Thresholds of the plausibility checks (shares are of the meter's capacity). A check whose threshold
    may be None is switched off by None, or by `false` in a TOML file (which has no null)."""

    nameplate_tolerance: float = Field(default=0.02, ge=0)  # relative excess over nameplate allowed
    night_sun_elevation_deg: float = Field(default=-3.0, le=0)  # PV export below this sun elevation
    night_tolerance: float = Field(default=0.001, ge=0)  # PV export at night allowed, share
    pr_max: float | None = Field(default=1.2, gt=0)  # performance ratio above which export is excluded
    pr_min: float | None = Field(default=0.2, ge=0)  # performance ratio below which PV is reported
    pr_min_irradiance_w_m2: float = Field(default=200.0, gt=0)  # pr_min applies from this irradiance
    power_curve_tolerance: float = Field(default=0.1, ge=0)
    slack: float = Field(default=0.01, ge=0)  # absolute slack of the PR and power-curve bounds, share
    frozen_intervals: int | None = Field(default=4, ge=2)
    frozen_min_power: float = Field(default=0.01, gt=0)  # share that must be flowing
    flat_line_intervals: int | None = Field(default=12, ge=2)
    max_ramp_per_minute: float | None = Field(default=1.0, gt=0)  # share per minute
    duplicate_window: int | None = Field(default=8, ge=2)
    duplicate_min_energy: float = Field(default=0.05, ge=0)  # share, as mean power over a window
    clock_max_ahead_s: float = Field(default=60.0, ge=0)
    clock_max_behind_s: float | None = Field(default=None, ge=0)  # off: edge buffering makes lag normal

    @field_validator("pr_max", "pr_min", "frozen_intervals", "flat_line_intervals", "max_ramp_per_minute",
                     "duplicate_window", "clock_max_behind_s", mode="before")
    @classmethod
    def _false_is_off(cls, value: object) -> object:
        return None if value is False else value


class IssuedClaim(_Model):
    """A claim on this generation as a scheme's registry records it (e.g. GEC certificates issued)."""

    scheme: Scheme
    first_day: dt.date  # days of the project's clock, inclusive
    last_day: dt.date
    mwh: float  # its sign and, for certificates, whole MWh are checked with the double-claiming rules
    reference: str = Field(min_length=1)  # the registry's reference, e.g. a GEC serial range

    @model_validator(mode="after")
    def _order(self) -> IssuedClaim:
        if self.last_day < self.first_day:
            raise ValueError(f"last_day {self.last_day} precedes first_day {self.first_day}")
        return self


class Claims(_Model):
    """The schemes this generation is claimed under, and the claims already made (`[[claims.issued]]`,
    see project.example.toml)."""

    declared: tuple[Scheme, ...]  # every scheme this generation is claimed under
    policy: ClaimPolicy = ClaimPolicy.REFUSE
    issued: tuple[IssuedClaim, ...] = ()


class ProjectConfig(_Model):
    project_id: str
    technology: Technology
    nameplate_capacity_mw: Positive
    utc_offset_minutes: int = Field(ge=-720, le=840)
    crediting_period: CreditingPeriod
    methodology: MethodologyConfig
    grid_ef: GridEmissionFactor
    meters: tuple[MeterConfig, ...]
    claims: Claims
    monitoring: Monitoring
    plausibility: Plausibility = Field(default_factory=Plausibility)
    site: Site | None = None

    @field_validator("project_id")
    @classmethod
    def _project_id(cls, value: str) -> str:
        return check_id(value, "project id")

    @field_validator("grid_ef")
    @classmethod
    def _default_weights(cls, value: GridEmissionFactor, info: ValidationInfo) -> GridEmissionFactor:
        technology, crediting = info.data.get("technology"), info.data.get("crediting_period")
        if isinstance(value, CombinedMargin) and technology is not None and crediting is not None:
            return value.with_default_weights(technology, crediting.number)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ProjectConfig:
        ids = [m.id for m in self.meters]
        devices = [m.device_id for m in self.meters]
        if len(set(ids)) != len(ids) or len(set(devices)) != len(devices):
            raise ValueError("meter ids and meter device ids must each be unique")
        mains = {m.id for m in self.meters if m.role is MeterRole.MAIN}
        if not mains:
            raise ValueError("at least one main meter is needed")
        checked = [m.checks for m in self.meters if m.checks is not None]
        if not set(checked) <= mains or len(set(checked)) != len(checked):
            raise ValueError("each check meter checks a distinct main meter")
        plugin = methodology_for(self.methodology)
        plugin.check_project(ProjectFacts(self.technology, self.nameplate_capacity_mw.value,
                                          self.crediting_period.start, self.crediting_period.end))
        if plugin.scheme not in self.claims.declared:
            raise ValueError(f"{plugin.id} credits under {plugin.scheme}: declare it in claims.declared")
        for index, claim in enumerate(self.issued_claims()):
            try:
                validate_claim(claim, self.claims.declared)
            except DoubleClaimError as e:
                raise ValueError(f"claims.issued[{index}]: {e.detail}") from None
        return self

    def meter(self, meter_id: str) -> MeterConfig:
        return next(m for m in self.meters if m.id == meter_id)

    @property
    def crediting_span(self) -> Span:
        return Span(day_start_ms(self.crediting_period.start, self.utc_offset_minutes),
                    day_end_ms(self.crediting_period.end, self.utc_offset_minutes))

    def issued_claims(self) -> tuple[Claim, ...]:
        """`claims.issued` as the double-claiming guard takes them, over the spans of their days."""
        offset = self.utc_offset_minutes
        return tuple(Claim(c.scheme, Span(day_start_ms(c.first_day, offset), day_end_ms(c.last_day, offset)),
                           c.mwh, c.reference) for c in self.claims.issued)

    def claims_overlapping(self, period: Span) -> tuple[Claim, ...]:
        """The issued claims whose days overlap `period` (touching its start or end is not overlapping)."""
        return tuple(c for c in self.issued_claims() if c.period.overlaps(period))

    def capacity_w(self, meter: MeterConfig) -> float:
        kw = meter.capacity_kw
        return self.nameplate_capacity_mw.value * 1e6 if kw is None else kw * 1e3

    def meter_spec(self, meter: MeterConfig) -> MeterSpec:
        """The meter as the pure core sees it (times in ms, errors as a timeline)."""
        offset = self.utc_offset_minutes
        calibrations = [Calibration(day_end_ms(c.date, offset), day_end_ms(c.valid_until, offset),
                                    abs(exact(c.error_pct)) / 100, c.source) for c in meter.calibrations]
        max_power_w = self.capacity_w(meter) if meter.max_power_kw is None else meter.max_power_kw * 1e3
        return MeterSpec(meter.id, meter.device_id, meter.role, max_power_w, meter.max_permissible,
                         ErrorTimeline.from_calibrations(calibrations, meter.max_permissible),
                         meter.import_register, meter.checks)


def load_project_config(data: Mapping[str, Any]) -> ProjectConfig:
    """Validate a configuration dict (e.g. from `tomllib.load`); raises ConfigError saying what is wrong."""
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'project'}: {err['msg']}"
                             for err in e.errors())
        raise ConfigError(f"invalid project configuration: {problems}") from None
