"""Columns of stored readings and envelopes as the database delivers them, and their turning into the
engine's series: pure functions over numpy arrays, shared by the rollup and the scan path so that both
hand the engine the very same `PeriodData`.

Packed rollups (ingest/migrations/0005_rollups.sql) hold big-endian arrays; raw rows arrive as tuples.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from mrv_engine.series import I64, UNUSABLE, ArrivalSeries, RegisterSeries, SampleSeries
from mrv_engine.units import MS_PER_DAY

_I8 = np.dtype(">i8")
_I4 = np.dtype(">i4")
_I2 = np.dtype(">i2")
_F8 = np.dtype(">f8")
HASH_BYTES = 32
_Part = TypeVar("_Part", "ReadingColumns", "EnvelopeColumns")


def _by_first(parts: Sequence[_Part], times: Callable[[_Part], I64]) -> list[_Part]:
    """The non-empty parts, by their first time."""
    return sorted((p for p in parts if times(p).size), key=lambda p: int(times(p)[0]))


def _ordered(times: I64, ids: I64) -> bool:
    """Whether rows are in (time, id) order."""
    later = times[1:] > times[:-1]
    return bool(np.all(later | ((times[1:] == times[:-1]) & (ids[1:] > ids[:-1]))))


def _slice(times: I64, lo_ms: int, hi_ms: int) -> slice:
    """The rows of sorted `times` in [lo_ms, hi_ms]: a view, not a copy."""
    return slice(int(np.searchsorted(times, lo_ms, "left")), int(np.searchsorted(times, hi_ms, "right")))


def _kept(keep: NDArray[np.bool_], *columns: NDArray[Any]) -> tuple[NDArray[Any], ...]:
    """`columns` where `keep`; the columns themselves when it keeps every row (the usual case)."""
    return columns if bool(keep.all()) else tuple(c[keep] for c in columns)


def distinct_sorted(arrays: Sequence[I64]) -> I64:
    """The distinct values of `arrays`, sorted. Envelope ids are dense: marked in a bitmap over their range
    when it is not much larger than their count, sorted otherwise."""
    values = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    if not values.size:
        return values
    low, high = int(values.min()), int(values.max())
    if high - low < 8 * values.size:
        present = np.zeros(high - low + 1, dtype=np.bool_)
        present[values - low] = True
        return np.flatnonzero(present) + low
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


@dataclass(frozen=True, eq=False)
class ReadingColumns:
    """Readings of one (device, metric), sorted by (timestamp, envelope id); `values` int64 Wh for a
    cumulative register, float64 otherwise."""

    ts_ms: I64
    values: NDArray[Any]
    quality: I64
    envelope_ids: I64

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
        parts = _by_first(parts, lambda p: p.ts_ms)
        if not parts:
            return cls.empty(integer=integer)
        ts, ids = np.concatenate([p.ts_ms for p in parts]), np.concatenate([p.envelope_ids for p in parts])
        values, quality = np.concatenate([p.values for p in parts]), np.concatenate([p.quality for p in parts])
        if _ordered(ts, ids):  # parts of disjoint days, each sorted: the usual case
            return cls(ts, values, quality, ids)
        order = np.lexsort((ids, ts))
        return cls(ts[order], values[order], quality[order], ids[order])

    def between(self, lo_ms: int, hi_ms: int) -> ReadingColumns:
        inside = _slice(self.ts_ms, lo_ms, hi_ms)
        return ReadingColumns(self.ts_ms[inside], self.values[inside], self.quality[inside],
                              self.envelope_ids[inside])

    def _first_per_time(self) -> NDArray[np.bool_]:
        # Two envelopes carrying a reading for the same instant: the first stored one counts.
        return np.concatenate(([True], np.diff(self.ts_ms) > 0)) if self.ts_ms.size else np.zeros(0, bool)

    def register(self) -> RegisterSeries:
        keep = self._first_per_time()
        return RegisterSeries(*_kept(keep, self.ts_ms, self.values.astype(np.int64, copy=False), self.quality))

    def samples(self) -> SampleSeries:
        """Usable, finite samples, one per instant."""
        values = self.values.astype(np.float64, copy=False)
        ts, values = _kept(((self.quality & UNUSABLE) == 0) & np.isfinite(values), self.ts_ms, values)
        keep = np.concatenate(([True], np.diff(ts) > 0)) if ts.size else np.zeros(0, bool)
        return SampleSeries(*_kept(keep, ts, values))


@dataclass(frozen=True, eq=False)
class Frame:
    """The readings of one device on one UTC day as `readings_frames` packs them
    (ingest/migrations/0007_reading_frames.sql): the day's distinct (timestamp, envelope id) keys once,
    and each metric's readings as cells referring to them."""

    day: int  # days since the epoch
    ts_ms: bytes  # int4 per key, ms since the day's start
    envelope_ids: bytes  # int8 per key
    metrics: Sequence[int]
    counts: Sequence[int]  # readings per metric
    vals: bytes  # per metric, its readings' int8 or float8 values in key order
    key_index: bytes | None  # int4 per reading; None: each metric has one reading per key
    quality: bytes | None  # int2 per reading; None: all 0

    @functools.cached_property
    def keys(self) -> tuple[I64, I64]:
        """Timestamps (ms since the epoch) and envelope ids of the keys, decoded once for all metrics."""
        return (np.frombuffer(self.ts_ms, _I4).astype(np.int64) + self.day * MS_PER_DAY,
                np.frombuffer(self.envelope_ids, _I8).astype(np.int64))

    def readings(self, metric: int, *, integer: bool) -> ReadingColumns:
        if metric not in self.metrics:
            return ReadingColumns.empty(integer=integer)
        at = list(self.metrics).index(metric)
        first, n = sum(self.counts[:at]), self.counts[at]
        values = np.frombuffer(self.vals, _I8 if integer else _F8, count=n, offset=8 * first)
        ts, ids = self.keys
        if self.key_index is not None:
            index = np.frombuffer(self.key_index, _I4, count=n, offset=4 * first)
            ts, ids = ts[index], ids[index]
        quality = (np.zeros(n, np.int64) if self.quality is None
                   else np.frombuffer(self.quality, _I2, count=n, offset=2 * first).astype(np.int64))
        return ReadingColumns(ts, values.astype(np.int64 if integer else np.float64), quality, ids)


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
        """Parts in any order, merged into (device time, id) order."""
        parts = _by_first(parts, lambda p: p.device_time_ms)
        if not parts:
            return cls.of_rows(())
        ids, times = np.concatenate([p.ids for p in parts]), np.concatenate([p.device_time_ms for p in parts])
        received, hashes = np.concatenate([p.received_ms for p in parts]), np.concatenate([p.hashes for p in parts])
        if _ordered(times, ids):
            return cls(ids, times, received, hashes)
        order = np.lexsort((ids, times))
        return cls(ids[order], times[order], received[order], hashes[order])

    def between(self, lo_ms: int, hi_ms: int) -> EnvelopeColumns:
        inside = _slice(self.device_time_ms, lo_ms, hi_ms)
        return EnvelopeColumns(self.ids[inside], self.device_time_ms[inside], self.received_ms[inside],
                               self.hashes[inside])

    def arrivals(self, lo_ms: int, hi_ms: int) -> ArrivalSeries:
        """Envelopes with device time in [lo_ms, hi_ms], one per device time (the first stored)."""
        inside = _slice(self.device_time_ms, lo_ms, hi_ms)
        times, received = self.device_time_ms[inside], self.received_ms[inside]
        keep = np.concatenate(([True], np.diff(times) > 0)) if times.size else np.zeros(0, bool)
        return ArrivalSeries(times[keep], received[keep])


_HEX = np.array([f"{b:02x}".encode() for b in range(256)], dtype="S2")
_HASH = np.dtype((np.void, HASH_BYTES))


def hex_digests(hashes: NDArray[np.void]) -> list[str]:
    """32-byte hashes as lowercase hex strings, converted in bulk."""
    pairs = _HEX[np.frombuffer(hashes.tobytes(), np.uint8)].reshape(-1, HASH_BYTES)
    return np.ascontiguousarray(pairs).view(f"S{2 * HASH_BYTES}").ravel().astype(f"U{2 * HASH_BYTES}").tolist()


def _take(hashes: NDArray[np.void], index: NDArray[np.intp]) -> NDArray[np.void]:
    """`hashes[index]`, gathered as rows of four 64-bit words: several times faster than as 32-byte items."""
    words = np.ascontiguousarray(hashes).view(np.uint64).reshape(-1, HASH_BYTES // 8)
    return np.take(words, index, axis=0).view(_HASH).ravel()


def _sorted_distinct(hashes: NDArray[np.void], *, sorted_runs: bool = False) -> NDArray[np.void]:
    """Hashes in byte order (= hex order), duplicates dropped.

    One plain sort of 64-bit keys, each a hash's first 8 bytes with its low bits replaced by the hash's
    index (sorting plain keys is about twice as fast as an argsort, and the index comes back with them).
    Hashes whose keys share the remaining top bits (rare for SHA-256; always for duplicates) are then
    ordered by all 32 bytes. `sorted_runs`: `hashes` is a few sorted sets one after another (a union),
    which a merge sort takes in a few passes."""
    hashes = np.ascontiguousarray(hashes)
    n = hashes.size
    if n < 2:
        return hashes
    words = hashes.view(np.uint8).view(">u8").reshape(n, HASH_BYTES // 8)
    bits = (n - 1).bit_length()
    index_mask = np.uint64((1 << bits) - 1)
    keys = np.sort((words[:, 0] & ~index_mask) | np.arange(n, dtype=np.uint64),
                   kind="stable" if sorted_runs else "quicksort")
    order = (keys & index_mask).astype(np.intp)
    tie = (keys[1:] & ~index_mask) == (keys[:-1] & ~index_mask)
    if not tie.any():
        return _take(hashes, order)
    tied = np.flatnonzero(np.concatenate(([False], tie)) | np.concatenate((tie, [False])))
    # tied positions of one run of equal keys stay together
    run = np.cumsum(np.concatenate(([True], ~((tied[1:] == tied[:-1] + 1) & tie[tied[:-1]]))))
    members = order[tied]
    order[tied] = members[np.lexsort((*words[members].T[::-1], run))]
    duplicate = np.zeros(n, dtype=np.bool_)
    pairs = np.flatnonzero(tie)
    duplicate[pairs + 1] = np.all(words[order[pairs + 1]] == words[order[pairs]], axis=1)
    return _take(hashes, order[~duplicate])


_Sorted = tuple[NDArray[np.void], str]  # hashes sorted and distinct, and their SHA-256


def _sorted_digest(hashes: NDArray[np.void], sorted_runs: bool = False) -> _Sorted:
    ordered = _sorted_distinct(hashes, sorted_runs=sorted_runs)
    return ordered, hashlib.sha256(ordered.data).hexdigest()


def _union_digest(sets: Sequence[EnvelopeHashes]) -> _Sorted:
    words = [s.raw.view(np.uint64).reshape(-1, HASH_BYTES // 8) for s in sets]  # copied as words: faster
    return _sorted_digest(np.concatenate(words).view(_HASH).ravel() if sets else np.zeros(0, _HASH), True)


def _soon(job: Callable[[], _Sorted], background: bool) -> _Sorted | Future[_Sorted]:
    """`job` done now, or started on a thread of its own."""
    if not background:
        return job()
    pool = ThreadPoolExecutor(1)
    future = pool.submit(job)
    pool.shutdown(wait=False)
    return future


class EnvelopeHashes(Sequence[str]):
    """A set of envelope hashes held as raw bytes, sorted and distinct: reads as a sequence of lowercase hex
    strings, and `sha256` digests it without making a string per envelope (a project-year holds
    millions). The digest equals `results.EnvelopeDigest.of` over the hex strings."""

    __slots__ = ("_sorted",)

    def __init__(self, hashes: NDArray[np.void], *, background: bool = False) -> None:
        """`background`: sort and digest on another thread (numpy and hashlib work without the GIL), so that
        a report's checks run meanwhile on the other core; the set waits for it when first used."""
        self._sorted = _soon(functools.partial(_sorted_digest, hashes.astype(_HASH, copy=False)), background)

    _sorted: _Sorted | Future[_Sorted]

    def _result(self) -> _Sorted:
        if isinstance(self._sorted, Future):
            self._sorted = self._sorted.result()
        return self._sorted

    @property
    def raw(self) -> NDArray[np.void]:
        return self._result()[0]

    @classmethod
    def union(cls, sets: Sequence[EnvelopeHashes], *, background: bool = False) -> EnvelopeHashes:
        if len(sets) == 1:
            return sets[0]
        union = cls.__new__(cls)
        union._sorted = _soon(functools.partial(_union_digest, list(sets)), background)
        return union

    def __len__(self) -> int:
        return int(self.raw.size)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return hex_digests(self.raw[index])
        return bytes(self.raw[index]).hex()

    def __iter__(self) -> Iterator[str]:
        return iter(hex_digests(self.raw))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EnvelopeHashes):
            return bool(np.array_equal(self.raw, other.raw))
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def sha256(self) -> str:
        return self._result()[1]


def hash_lookup(envelopes: Sequence[EnvelopeColumns], ids: I64) -> tuple[NDArray[np.void], I64]:
    """The hashes of those `ids` (distinct) found among `envelopes`, as a set (in no particular order), and
    the ids not found."""
    known = np.concatenate([e.ids for e in envelopes]) if envelopes else np.zeros(0, np.int64)
    hashes = np.concatenate([e.hashes for e in envelopes]) if envelopes else np.zeros(0, _HASH)
    if not known.size:
        return hashes, ids
    low, span = int(known.min()), int(known.max()) - int(known.min()) + 1
    if span <= 8 * known.size:  # dense ids, as envelope ids are: a position table instead of a sort
        position = np.full(span, -1, dtype=np.int64)
        position[known - low] = np.arange(known.size)
        at = np.full(ids.size, -1, dtype=np.int64)
        inside = (ids >= low) & (ids < low + span)
        at[inside] = position[ids[inside] - low]
    else:
        order = np.argsort(known, kind="stable")
        index = np.clip(np.searchsorted(known[order], ids), 0, known.size - 1)
        at = np.where(known[order][index] == ids, order[index], -1)
    found = at >= 0
    if known.size == ids.size and bool(found.all()):  # every known envelope wanted: nothing to gather
        return hashes, ids[:0]
    return _take(hashes, at[found]), ids[~found]


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
