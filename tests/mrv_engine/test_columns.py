"""Pure pieces of the database layer and the report: day planning, packed arrays, periods."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pytest

from mrv_engine.columns import (
    EnvelopeColumns,
    EnvelopeHashes,
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


def test_packed_big_endian_arrays_decode_like_rows() -> None:
    ts, values, quality, ids = [1, 2, 3], [10, 2**62, 30], [0, 4, 0], [7, 8, 9]
    packed = ReadingColumns.unpack(np.array(ts, ">i8").tobytes(), np.array(values, ">i8").tobytes(),
                                   np.array(quality, ">i4").tobytes(), np.array(ids, ">i8").tobytes(), integer=True)
    rows = ReadingColumns.of_rows(list(zip(ts, values, quality, ids, strict=True)), integer=True)
    for a, b in ((packed.ts_ms, rows.ts_ms), (packed.values, rows.values), (packed.quality, rows.quality),
                 (packed.envelope_ids, rows.envelope_ids)):
        assert np.array_equal(a, b)


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
    assert hex_digests(hashes) == [digests[i].hex() for i in (0, 5, 2)]
    assert missing.tolist() == [ids[0] - 1, ids[3], 10**9]
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
