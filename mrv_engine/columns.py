"""Columns of stored readings and envelopes as the database delivers them, and their turning into the
engine's series: pure functions over numpy arrays, shared by the rollup and the scan path so that both
hand the engine the very same `PeriodData`.

Packed rollups (ingest/migrations/0005_rollups.sql) hold big-endian arrays; raw rows arrive as tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mrv_engine.series import I64, UNUSABLE, ArrivalSeries, RegisterSeries, SampleSeries
from mrv_engine.units import MS_PER_DAY

_I8 = np.dtype(">i8")
_I4 = np.dtype(">i4")
_F8 = np.dtype(">f8")
HASH_BYTES = 32


@dataclass(frozen=True, eq=False)
class ReadingColumns:
    """Readings of one (device, metric), sorted by (timestamp, envelope id); `values` int64 Wh for a
    cumulative register, float64 otherwise."""

    ts_ms: I64
    values: NDArray[Any]
    quality: I64
    envelope_ids: I64

    @classmethod
    def unpack(cls, ts_ms: bytes, values: bytes, quality: bytes, envelope_ids: bytes, *, integer: bool
               ) -> ReadingColumns:
        return cls(np.frombuffer(ts_ms, _I8).astype(np.int64),
                   np.frombuffer(values, _I8 if integer else _F8).astype(np.int64 if integer else np.float64),
                   np.frombuffer(quality, _I4).astype(np.int64), np.frombuffer(envelope_ids, _I8).astype(np.int64))

    @classmethod
    def of_rows(cls, rows: Sequence[tuple[int, float | int, int, int]], *, integer: bool) -> ReadingColumns:
        if not rows:
            return cls.empty(integer=integer)
        ts, values, quality, ids = zip(*rows, strict=True)
        return cls(np.array(ts, np.int64), np.array(values, np.int64 if integer else np.float64),
                   np.array(quality, np.int64), np.array(ids, np.int64))

    @classmethod
    def empty(cls, *, integer: bool) -> ReadingColumns:
        zero = np.zeros(0, np.int64)
        return cls(zero, np.zeros(0, np.int64 if integer else np.float64), zero, zero)

    @classmethod
    def concat(cls, parts: Sequence[ReadingColumns], *, integer: bool) -> ReadingColumns:
        """Parts in any order, merged into (timestamp, envelope id) order."""
        if not parts:
            return cls.empty(integer=integer)
        ts, ids = np.concatenate([p.ts_ms for p in parts]), np.concatenate([p.envelope_ids for p in parts])
        order = np.lexsort((ids, ts))
        return cls(ts[order], np.concatenate([p.values for p in parts])[order],
                   np.concatenate([p.quality for p in parts])[order], ids[order])

    def between(self, lo_ms: int, hi_ms: int) -> ReadingColumns:
        inside = (self.ts_ms >= lo_ms) & (self.ts_ms <= hi_ms)
        return ReadingColumns(self.ts_ms[inside], self.values[inside], self.quality[inside],
                              self.envelope_ids[inside])

    def _first_per_time(self) -> NDArray[np.bool_]:
        # Two envelopes carrying a reading for the same instant: the first stored one counts.
        return np.concatenate(([True], np.diff(self.ts_ms) > 0)) if self.ts_ms.size else np.zeros(0, bool)

    def register(self) -> RegisterSeries:
        keep = self._first_per_time()
        return RegisterSeries(self.ts_ms[keep], self.values[keep].astype(np.int64), self.quality[keep])

    def samples(self) -> SampleSeries:
        """Usable, finite samples, one per instant."""
        values = self.values.astype(np.float64)
        usable = ((self.quality & UNUSABLE) == 0) & np.isfinite(values)
        ts = self.ts_ms[usable]
        keep = np.concatenate(([True], np.diff(ts) > 0)) if ts.size else np.zeros(0, bool)
        return SampleSeries(ts[keep], values[usable][keep])


@dataclass(frozen=True, eq=False)
class EnvelopeColumns:
    """Envelopes of one device, sorted by (device time, id)."""

    ids: I64
    device_time_ms: I64
    received_ms: I64
    hashes: NDArray[np.void]  # 32-byte SHA-256 of each envelope

    @classmethod
    def unpack(cls, ids: bytes, device_time_ms: bytes, received_ms: bytes, hashes: bytes) -> EnvelopeColumns:
        return cls(np.frombuffer(ids, _I8).astype(np.int64), np.frombuffer(device_time_ms, _I8).astype(np.int64),
                   np.frombuffer(received_ms, _I8).astype(np.int64),
                   np.frombuffer(hashes, np.dtype((np.void, HASH_BYTES))))

    @classmethod
    def of_rows(cls, rows: Sequence[tuple[int, int, int, bytes]]) -> EnvelopeColumns:
        ids, device_time, received, hashes = zip(*rows, strict=True) if rows else ((), (), (), ())
        return cls(np.array(ids, np.int64), np.array(device_time, np.int64), np.array(received, np.int64),
                   np.frombuffer(b"".join(hashes), np.dtype((np.void, HASH_BYTES))))

    @classmethod
    def concat(cls, parts: Sequence[EnvelopeColumns]) -> EnvelopeColumns:
        if not parts:
            return cls.of_rows(())
        ids, times = np.concatenate([p.ids for p in parts]), np.concatenate([p.device_time_ms for p in parts])
        order = np.lexsort((ids, times))
        return cls(ids[order], times[order], np.concatenate([p.received_ms for p in parts])[order],
                   np.concatenate([p.hashes for p in parts])[order])

    def between(self, lo_ms: int, hi_ms: int) -> EnvelopeColumns:
        inside = (self.device_time_ms >= lo_ms) & (self.device_time_ms <= hi_ms)
        return EnvelopeColumns(self.ids[inside], self.device_time_ms[inside], self.received_ms[inside],
                               self.hashes[inside])

    def arrivals(self, lo_ms: int, hi_ms: int) -> ArrivalSeries:
        """Envelopes with device time in [lo_ms, hi_ms], one per device time (the first stored)."""
        inside = (self.device_time_ms >= lo_ms) & (self.device_time_ms <= hi_ms)
        times, received = self.device_time_ms[inside], self.received_ms[inside]
        keep = np.concatenate(([True], np.diff(times) > 0)) if times.size else np.zeros(0, bool)
        return ArrivalSeries(times[keep], received[keep])


_HEX = np.array([f"{b:02x}".encode() for b in range(256)], dtype="S2")


def hex_digests(hashes: NDArray[np.void]) -> list[str]:
    """32-byte hashes as lowercase hex strings, converted in bulk."""
    pairs = _HEX[np.frombuffer(hashes.tobytes(), np.uint8)].reshape(-1, HASH_BYTES)
    return np.ascontiguousarray(pairs).view(f"S{2 * HASH_BYTES}").ravel().astype(f"U{2 * HASH_BYTES}").tolist()


def hash_lookup(envelopes: Sequence[EnvelopeColumns], ids: I64) -> tuple[NDArray[np.void], I64]:
    """The hashes of those `ids` found among `envelopes`, and the ids not found."""
    known = EnvelopeColumns.concat(envelopes)
    order = np.argsort(known.ids, kind="stable")
    sorted_ids = known.ids[order]
    at = np.clip(np.searchsorted(sorted_ids, ids), 0, max(sorted_ids.size - 1, 0))
    found = (sorted_ids[at] == ids) if sorted_ids.size else np.zeros(ids.size, bool)
    return known.hashes[order][at[found]], ids[~found]


def utc_days(lo_ms: int, hi_ms: int) -> range:
    """The UTC days (days since the epoch) that [lo_ms, hi_ms] touches."""
    return range(lo_ms // MS_PER_DAY, hi_ms // MS_PER_DAY + 1)


def uncovered(lo_ms: int, hi_ms: int, days: Sequence[int]) -> list[tuple[int, int]]:
    """Half-open ranges of [lo_ms, hi_ms] not covered by the UTC `days` (sorted)."""
    ranges, at = [], lo_ms
    for day in days:
        start = day * MS_PER_DAY
        if start > at:
            ranges.append((at, min(start, hi_ms + 1)))
        at = max(at, start + MS_PER_DAY)
    if at <= hi_ms:
        ranges.append((at, hi_ms + 1))
    return ranges
