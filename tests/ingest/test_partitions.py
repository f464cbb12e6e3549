"""Monthly readings partitions: the month arithmetic, creation ahead of need, and the default
partition as a safety net whose rows move into the month's partition once it exists."""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
import pytest

from ingest.decide import Message, Policy
from ingest.partitions import ReadingsPartitions, add_months, month_of, months_needed, window
from ingest.pipeline import Ingestor
from ingest.screening import Screener
from ingest.store import Store
from tests.ingest.helpers import Device, enroll, now_ms


def ms(year: int, month: int, day: int = 1, hour: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp() * 1000)


def test_month_arithmetic() -> None:
    assert month_of(ms(2026, 1, 31, 23)) == (2026, 1)
    assert month_of(ms(2026, 2) - 1) == (2026, 1)
    assert add_months((2026, 11), 3) == (2027, 2)
    assert add_months((2026, 1), -1) == (2025, 12)
    assert window(ms(2026, 1, 15), 1, 2) == [(2025, 12), (2026, 1), (2026, 2), (2026, 3)]


def test_months_needed_covers_envelopes_that_straddle_a_month() -> None:
    from ingest.decide import Admitted

    def env(*stamps: int) -> Admitted:
        return Admitted("d", 0, b"", b"", b"", stamps[0], tuple((1, ts, 0, 0) for ts in stamps), 0)

    assert months_needed([env(ms(2026, 3, 2), ms(2026, 3, 3))]) == {(2026, 3)}
    assert months_needed([env(ms(2026, 3, 31, 23), ms(2026, 5, 1), ms(2026, 4, 2))]) == {
        (2026, 3), (2026, 4), (2026, 5)}


def _partitions(conninfo: str) -> dict[str, int]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT tableoid::regclass::text, count(*) FROM readings GROUP BY 1").fetchall()
    return dict(rows)


@pytest.mark.integration
def test_store_creates_the_window_and_each_incoming_month(pg_conninfo: str) -> None:
    device = Device("meter-1", "plant-1")
    enroll(pg_conninfo, [device], valid_from_ms=ms(2020, 1))
    old = ms(2024, 6, 15)
    ingestor = Ingestor(Store(pg_conninfo, months_back=1, months_ahead=2), Screener(Policy(), 0, 0))
    try:
        result = ingestor.process([Message(device.topic, device.next(old), now_ms()),
                                   Message(device.topic, device.next(), now_ms())])
    finally:
        ingestor.close()
    assert result.stored == 2
    with psycopg.connect(pg_conninfo) as conn:
        names = {n for (n,) in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'readings'::regclass")}
    expected = {f"readings_{y:04d}_{m:02d}" for y, m in window(now_ms(), 1, 2)} | {"readings_2024_06",
                                                                                   "readings_default"}
    assert expected <= names
    counts = _partitions(pg_conninfo)
    assert counts["readings_2024_06"] == 10 and "readings_default" not in counts


@pytest.mark.integration
def test_rows_caught_by_the_default_partition_move_when_their_month_is_created(pg_conninfo: str) -> None:
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO projects (id) VALUES ('p')")
        conn.execute("INSERT INTO readings (device_id, metric, ts, value, quality, envelope_id) "
                     "VALUES ('d', 1, '1999-05-03T00:00:00Z', 1, 0, 1), "
                     "       ('d', 1, '1999-06-01T00:00:00Z', 2, 0, 2)")
        keeper = ReadingsPartitions()
        keeper.load(conn)
        assert keeper.ensure(conn, [(1999, 5)]) == [(1999, 5)]
        assert keeper.ensure(conn, [(1999, 5)]) == []
    assert _partitions(pg_conninfo) == {"readings_1999_05": 1, "readings_default": 1}


@pytest.mark.integration
def test_concurrent_workers_creating_the_same_month_do_not_collide(pg_conninfo: str) -> None:
    errors: list[BaseException] = []

    def create() -> None:
        try:
            with psycopg.connect(pg_conninfo, autocommit=True) as conn:
                ReadingsPartitions().ensure(conn, [(2031, m) for m in range(1, 7)])
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(pg_conninfo) as conn:
        made = conn.execute("SELECT count(*) FROM pg_class "
                            "WHERE relkind = 'r' AND relname LIKE 'readings_2031_%'").fetchone()
    assert made == (6,)
