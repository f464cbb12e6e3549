"""Pure pieces of the database layer and the report: day planning, packed arrays, periods."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrv_engine.columns import (
    EnvelopeColumns,
    EnvelopeHashes,
    Frame,
    ReadingColumns,
    distinct_sorted,
    hash_lookup,
    hex_digests,
    uncovered,
    utc_days,
)
from mrv_engine.evidence import id_runs
from mrv_engine.report import month_range, monthly_periods
from mrv_engine.results import EnvelopeDigest
from mrv_engine.timespan import day_start_ms
from mrv_engine.units import MS_PER_DAY

D = MS_PER_DAY


def test_days_touched_and_ranges_left_to_raw_reads() -> None:
    assert list(utc_days(D // 2, 3 * D)) == [0, 1, 2, 3]
    assert uncovered(D // 2, 3 * D, [0, 1, 2, 3]) == []
    assert uncovered(D // 2, 3 * D, [1]) == [(D // 2, D), (2 * D, 3 * D + 1)]
    assert uncovered(D // 2, 3 * D, []) == [(D // 2, 3 * D + 1)]


def _same_columns(a: ReadingColumns, b: ReadingColumns) -> None:
    for x, y in ((a.ts_ms, b.ts_ms), (a.values, b.values), (a.quality, b.quality), (a.envelope_ids, b.envelope_ids)):
        assert x.dtype == y.dtype and np.array_equal(x, y)


def test_dense_frames_decode_like_rows() -> None:
    day = 20_000
    keys_ts, keys_ids = [0, 60_000, MS_PER_DAY - 1], [7, 8, 9]
    registers, power = [10, 2**62, 2**62 + 5], [1.5, -2.0, 0.0]
    frame = Frame(day, np.array(keys_ts, ">i4").tobytes(), np.array(keys_ids, ">i8").tobytes(), [2, 3], [3, 3],
                  np.array(registers, ">i8").tobytes() + np.array(power, ">f8").tobytes(), None, None)
    ts = [day * MS_PER_DAY + t for t in keys_ts]
    _same_columns(frame.readings(2, integer=True),
                  ReadingColumns.of_rows(list(zip(ts, registers, [0] * 3, keys_ids, strict=True)), integer=True))
    _same_columns(frame.readings(3, integer=False),
                  ReadingColumns.of_rows(list(zip(ts, power, [0] * 3, keys_ids, strict=True)), integer=False))
    assert frame.readings(1, integer=True).ts_ms.size == 0


def test_sparse_frames_with_quality_decode_like_rows() -> None:
    # metric 2 at keys 0 and 2, metric 4 at key 1 only (read at another instant), one reading flagged
    keys_ts, keys_ids = [1_000, 2_000, 3_000], [5, 6, 6]
    frame = Frame(0, np.array(keys_ts, ">i4").tobytes(), np.array(keys_ids, ">i8").tobytes(), [2, 4], [2, 1],
                  np.array([100, 130], ">i8").tobytes() + np.array([812.5], ">f8").tobytes(),
                  np.array([0, 2, 1], ">i4").tobytes(), np.array([0, 4, 0], ">i2").tobytes())
    _same_columns(frame.readings(2, integer=True),
                  ReadingColumns.of_rows([(1_000, 100, 0, 5), (3_000, 130, 4, 6)], integer=True))
    _same_columns(frame.readings(4, integer=False),
                  ReadingColumns.of_rows([(2_000, 812.5, 0, 6)], integer=False))


def test_a_reading_stored_twice_counts_once_and_bad_samples_are_left_out() -> None:
    columns = ReadingColumns.concat([ReadingColumns.of_rows([(2, 5.0, 0, 3), (1, 1.0, 0, 1)], integer=False),
                                     ReadingColumns.of_rows([(2, 9.0, 0, 2), (3, 7.0, 1, 4)], integer=False)],
                                    integer=False)
    assert columns.envelope_ids.tolist() == [1, 2, 3, 4]
    samples = columns.samples()
    assert samples.timestamps_ms.tolist() == [1, 2] and samples.values.tolist() == [1.0, 9.0]
    register = ReadingColumns.of_rows([(1, 5, 0, 1), (1, 6, 0, 2), (2, 7, 0, 3)], integer=True).register()
    assert register.values_wh.tolist() == [5, 7]


def test_hashes_convert_in_bulk_and_arrivals_keep_one_envelope_per_device_time() -> None:
    digests = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    envelopes = EnvelopeColumns.of_rows([(1, 10, 11, digests[0]), (2, 10, 12, digests[1]), (3, 20, 25, digests[2])])
    assert hex_digests(envelopes.hashes) == [d.hex() for d in digests]
    arrivals = envelopes.arrivals(0, 15)
    assert arrivals.device_time_ms.tolist() == [10] and arrivals.arrival_ms.tolist() == [11]


@pytest.mark.parametrize("shared_prefix", [False, True])
def test_hash_sets_digest_like_the_hex_strings(shared_prefix: bool) -> None:
    digests = [hashlib.sha256(bytes([i % 5])).digest() for i in range(12)]  # duplicates
    if shared_prefix:  # the first 8 bytes tie: the full sort decides
        digests = [b"\x07" * 8 + d[8:] for d in digests] + [b"\x07" * 7 + b"\x06" + digests[0][8:]]
    raw = np.frombuffer(b"".join(digests), np.dtype((np.void, 32)))
    hashes = EnvelopeHashes(raw)
    hex_set = sorted({d.hex() for d in digests})
    assert list(hashes) == hex_set and len(hashes) == len(hex_set) and hashes[0] == hex_set[0]
    assert EnvelopeDigest.of(hashes) == EnvelopeDigest.of(hex_set)
    halves = EnvelopeHashes.union([EnvelopeHashes(raw[:6]), EnvelopeHashes(raw[4:])])
    assert halves == hashes and halves == hex_set


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**64 - 1), st.binary(min_size=24, max_size=24)),
                max_size=40))
def test_hash_sets_sort_and_drop_duplicates_like_python(parts: list[tuple[int, int, bytes]]) -> None:
    # few distinct prefixes, near each other: keys tie on their top bits and full hashes repeat
    digests = [(prefix if kind else prefix >> 60).to_bytes(8, "big") + (rest if kind > 1 else bytes(24))
               for kind, prefix, rest in parts]
    raw = np.frombuffer(b"".join(digests), np.dtype((np.void, 32)))
    assert list(EnvelopeHashes(raw)) == sorted({d.hex() for d in digests})


@pytest.mark.parametrize("spread", [1, 1_000_000])  # dense ids (bitmap) and sparse ones (sort)
def test_distinct_sorted_ids(spread: int) -> None:
    rng = np.random.default_rng(spread)
    arrays = [np.sort(rng.integers(0, 50, size=40)) * spread + 7 for _ in range(3)] + [np.zeros(0, np.int64)]
    assert distinct_sorted(arrays).tolist() == sorted({int(v) for a in arrays for v in a})
    assert distinct_sorted([]).size == 0


@pytest.mark.parametrize("spread", [1, 1_000_000])  # dense ids (position table) and sparse ones (sort)
def test_hash_lookup_finds_known_ids(spread: int) -> None:
    digests = [hashlib.sha256(bytes([i])).digest() for i in range(6)]
    ids = [spread * i + 3 for i in range(6)]
    parts = [EnvelopeColumns.of_rows([(ids[i], i, i, digests[i]) for i in chunk]) for chunk in ((4, 0, 2), (5, 1))]
    wanted = np.array([ids[0], ids[5], ids[0] - 1, ids[3], ids[2], 10**9], np.int64)
    hashes, missing = hash_lookup(parts, wanted)
    assert sorted(hex_digests(hashes)) == sorted(digests[i].hex() for i in (0, 5, 2))
    assert missing.tolist() == [ids[0] - 1, ids[3], 10**9]
    stored = (0, 1, 2, 4, 5)  # every stored envelope wanted
    every = hash_lookup(parts, np.array([ids[i] for i in stored], np.int64))
    assert sorted(hex_digests(every[0])) == sorted(digests[i].hex() for i in stored) and every[1].size == 0
    assert hash_lookup([], wanted)[1].tolist() == wanted.tolist()


def test_envelope_ids_as_runs() -> None:
    first, last = id_runs(np.array([1, 2, 3, 7, 9, 10], np.int64))
    assert first.tolist() == [1, 7, 9] and last.tolist() == [3, 7, 10]


def test_months_of_the_project_clock() -> None:
    assert month_range("2026-01..2026-03") == (dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    assert month_range("2024-02") == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_range("2026-1-01")
    periods = monthly_periods(dt.date(2026, 1, 15), dt.date(2026, 3, 10), 480)
    starts = [dt.date(2026, 1, 15), dt.date(2026, 2, 1), dt.date(2026, 3, 1)]
    assert [p.start_ms for p in periods] == [day_start_ms(d, 480) for d in starts]
    assert periods[-1].end_ms == day_start_ms(dt.date(2026, 3, 11), 480)
