"""Spans of time in integer milliseconds since the Unix epoch (UTC), and calendar dates at a UTC offset."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from mrv_engine.units import MS_PER_DAY

_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True, order=True)
class Span:
    """A closed span [start_ms, end_ms]; a monitoring period's readings at either end are boundary values."""

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.end_ms < self.start_ms:
            raise ValueError(f"span ends before it starts: {self.start_ms} > {self.end_ms}")

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    def contains(self, other: Span) -> bool:
        return self.start_ms <= other.start_ms and other.end_ms <= self.end_ms

    def overlaps(self, other: Span) -> bool:
        """A positive overlap; a point span overlaps the spans that contain it."""
        if self.start_ms == self.end_ms or other.start_ms == other.end_ms:
            return self.start_ms <= other.end_ms and other.start_ms <= self.end_ms
        return self.start_ms < other.end_ms and other.start_ms < self.end_ms

    def to_dict(self) -> dict[str, Any]:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Span:
        return cls(int(data["start_ms"]), int(data["end_ms"]))


def day_start_ms(day: dt.date, utc_offset_minutes: int) -> int:
    """Milliseconds at local midnight starting `day`, for a project clock at a fixed UTC offset."""
    return (day - _EPOCH).days * MS_PER_DAY - utc_offset_minutes * 60_000


def day_end_ms(day: dt.date, utc_offset_minutes: int) -> int:
    """Milliseconds at local midnight ending `day` (dates in configuration are inclusive)."""
    return day_start_ms(day, utc_offset_minutes) + MS_PER_DAY
