"""Parameter values with their provenance: every number a report uses says where it came from."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Sourced(BaseModel):
    """A configured value and the document it was taken from, e.g. `{value = 0.8, source = "PDD §B.6"}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float
    source: str = Field(min_length=3, description="where the value comes from (document, section, date)")

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class NonNegative(Sourced):
    @field_validator("value")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must not be negative")
        return value


class Positive(Sourced):
    @field_validator("value")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be positive")
        return value


class Fraction01(Sourced):
    """A share between 0 and 1 inclusive (a weight, an oxidation factor)."""

    @field_validator("value")
    @classmethod
    def _unit_interval(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError("must lie between 0 and 1")
        return value
