"""Replay recorded readings from a CSV file, one interval per `read`.

Format (a header row, then one reading per row; `mrv sim plant --format csv` writes it)::

    ts,metric,value,quality
    2025-06-21T12:00:00.000Z,energy_export_wh,1520334,SIMULATED
    2025-06-21T12:00:00.000Z,active_power_w,812345.5,

- ts: ISO 8601 with a time zone (``Z`` or ``+08:00``), or Unix milliseconds;
- metric: a protocol metric name (``energy_export_wh``) or its code (``2``);
- value: an integer for cumulative registers, any finite number otherwise;
- quality: empty (good), an integer bit mask, or flag names joined by ``|`` (``SIMULATED|ESTIMATED``).

Consecutive rows with the same ts form one interval. The file is streamed, not loaded, so a year of
one-second data replays on a small gateway. Readings keep their recorded timestamps unless
`restamp` is set, which stamps each interval with the agent's `now_ms` (live demos from old data).
Bad rows and the end of the file raise `SourceError` naming the line.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TextIO

from edge_agent.sources import SourceError
from protocol.envelope import Reading
from protocol.metrics import METRICS, METRICS_BY_NAME, QUALITY_MASK, Metric, MetricInfo, MetricKind, Quality

COLUMNS = ("ts", "metric", "value", "quality")
_CODES = frozenset(int(m) for m in Metric)


def format_ts(ts_ms: int) -> str:
    """ISO 8601 UTC with milliseconds: exact, and readable in a spreadsheet."""
    moment = dt.datetime.fromtimestamp(ts_ms // 1000, dt.UTC).replace(microsecond=ts_ms % 1000 * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_quality(quality: int) -> str:
    return "|".join(flag.name or "" for flag in Quality if flag and quality & flag)


def write_readings_csv(stream: TextIO, intervals: Iterable[Sequence[Reading]]) -> int:
    """Write the header and every reading; returns the number of rows written."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    rows = 0
    for readings in intervals:
        for r in readings:
            name = METRICS[Metric(r.metric)].name
            writer.writerow((format_ts(r.ts_ms), name, r.value, format_quality(r.quality)))
            rows += 1
    return rows


def parse_ts(text: str) -> int:
    if text.isdigit():
        return int(text)
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone (write ...Z or ...+08:00)")
    return round(moment.timestamp() * 1000)


def _metric(text: str) -> MetricInfo:
    if text.isdigit() and int(text) in _CODES:
        return METRICS[Metric(int(text))]
    if text in METRICS_BY_NAME:
        return METRICS_BY_NAME[text]
    raise ValueError(f"unknown metric {text!r}")


def _value(text: str, info: MetricInfo) -> int | float:
    if info.kind is MetricKind.CUMULATIVE:
        if not text.lstrip("-").isdigit():
            raise ValueError(f"{info.name} is a cumulative register: {text!r} must be an integer")
        return int(text)
    return float(text)


def _quality(text: str) -> int:
    if not text:
        return 0
    if text.isdigit():
        quality = int(text)
    else:
        quality = 0
        for name in text.split("|"):
            quality |= Quality[name.strip().upper()]
    if quality & ~QUALITY_MASK:
        raise ValueError(f"unknown quality bits in {text!r}")
    return int(quality)


def parse_row(row: Sequence[str]) -> Reading:
    """One CSV row as a validated reading; raises ValueError (KeyError for an unknown flag name)."""
    if len(row) != len(COLUMNS):
        raise ValueError(f"expected {len(COLUMNS)} columns ({','.join(COLUMNS)}), got {len(row)}")
    ts, metric_text, value_text, quality_text = (cell.strip() for cell in row)
    info = _metric(metric_text)
    value = _value(value_text, info)
    if not math.isfinite(value) or not info.min_value <= value <= info.max_value:
        raise ValueError(f"{info.name} {value_text} is outside [{info.min_value}, {info.max_value}]")
    return Reading(int(info.metric), parse_ts(ts), value, _quality(quality_text))


class CsvReplaySource:
    """Replays `path` (format in the module doc): each `read` returns the next interval."""

    def __init__(self, path: Path, *, restamp: bool = False) -> None:
        self.path = path
        self.restamp = restamp
        self.intervals_read = 0
        try:
            self._file: IO[str] = path.open(newline="", encoding="utf-8")
        except OSError as e:
            raise SourceError(f"cannot open {path}: {e.strerror}") from e
        self._rows: Iterator[list[str]] = csv.reader(self._file)
        self._line = 0
        self._pending: Reading | None = None
        self._last_ts: int | None = None
        header = self._next_row()
        if header is None or tuple(cell.strip() for cell in header) != COLUMNS:
            self.close()
            raise SourceError(f"{path}: the first line must be the header {','.join(COLUMNS)}")

    def read(self, now_ms: int) -> list[Reading]:
        first = self._pending or self._next_reading()
        if first is None:
            raise SourceError(f"{self.path}: replay finished after {self.intervals_read} intervals")
        interval = [first]
        self._pending = None
        while (reading := self._next_reading()) is not None:
            if reading.ts_ms != first.ts_ms:
                self._pending = reading
                break
            interval.append(reading)
        self.intervals_read += 1
        if self.restamp:
            return [Reading(r.metric, now_ms, r.value, r.quality) for r in interval]
        return interval

    def close(self) -> None:
        self._file.close()

    def _next_row(self) -> list[str] | None:
        try:
            row = next(self._rows, None)
        except (csv.Error, UnicodeDecodeError, ValueError) as e:
            raise SourceError(f"{self.path}:{self._line + 1}: {e}") from e
        self._line += 1
        return row

    def _next_reading(self) -> Reading | None:
        while (row := self._next_row()) is not None:
            if not row or all(not cell.strip() for cell in row):
                continue
            try:
                reading = parse_row(row)
            except (ValueError, KeyError) as e:  # KeyError: an unknown quality flag name
                raise SourceError(f"{self.path}:{self._line}: {e}") from e
            if self._last_ts is not None and reading.ts_ms < self._last_ts:
                raise SourceError(f"{self.path}:{self._line}: timestamps go backwards")
            self._last_ts = reading.ts_ms
            return reading
        return None
