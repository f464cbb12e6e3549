"""What the console reads from the database, on the seeded data: device status with gaps, chain breaks and
quarantine counts; downsampled readings; quarantine pages; checkpoint verification; periods."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest

from anchoring import Signer
from mrv_engine.console import queries
from tests.console.conftest import SeedDatabase
from tests.console.seed import (
    CHAIN_BREAKS,
    DELETED_SEQS,
    PV_DEVICE,
    PV_PROJECT,
    QUARANTINE,
    WIND_DEVICE,
    WIND_PROJECT,
    utc,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def conn(console_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(console_db, autocommit=True) as c:
        yield c


def test_device_status_counts_gaps_chain_breaks_and_quarantine(conn: psycopg.Connection) -> None:
    wind = queries.get_device(conn, WIND_DEVICE)
    assert wind.project_id == WIND_PROJECT and wind.key_status == "active" and wind.keys[0].valid_now
    assert (wind.first_seq, wind.last_seq) == (0, wind.envelopes + len(DELETED_SEQS) - 1)
    assert wind.missing_seqs == len(DELETED_SEQS)
    assert [(r.first, r.last) for r in wind.missing_ranges] == [(10, 12), (50, 50)]
    assert wind.chain_breaks == CHAIN_BREAKS and wind.gap_events == 1
    assert [(r.reason, r.count) for r in wind.quarantine_by_reason] == [("bad_signature", 3)]
    assert wind.quarantined == 3
    assert wind.readings == 4 * wind.envelopes  # export, import, power, irradiance per envelope
    assert wind.last_seen == wind.last_device_time  # delivered live: arrival = device time
    assert not wind.online  # seen in June, not within 15 minutes

    pv = queries.get_device(conn, PV_DEVICE)
    assert (pv.missing_seqs, pv.chain_breaks, pv.quarantined, pv.missing_ranges) == (0, 0, 0, [])
    assert {m.metric for m in pv.metrics} == {"energy_export_wh", "energy_import_wh", "active_power_w",
                                              "irradiance_w_m2"}
    assert [d.id for d in queries.list_devices(conn, PV_PROJECT)] == [PV_DEVICE]
    with pytest.raises(queries.NotFound):
        queries.get_device(conn, "no-such-device")


def test_online_follows_the_latest_arrival(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE envelopes SET received_at = now() - interval '1 minute' WHERE id = "
                 "(SELECT max(id) FROM envelopes WHERE device_id = %s)", [PV_DEVICE])
    fleet = queries.fleet_summary(conn, online_within_s=900)
    assert (fleet.devices, fleet.online, fleet.offline, fleet.never_seen) == (2, 1, 1, 0)
    assert fleet.missing_seqs == len(DELETED_SEQS) and fleet.chain_breaks == CHAIN_BREAKS
    assert fleet.quarantined == sum(QUARANTINE.values())
    assert sum(h.envelopes for h in fleet.envelopes_per_hour) > 0 and len(fleet.envelopes_per_hour) <= 25
    assert fleet.latest_checkpoint == fleet.log_size == fleet.envelopes


@pytest.mark.parametrize("points", [1, 7, 100, 5000])
def test_readings_are_downsampled_in_sql_without_losing_any(conn: psycopg.Connection, points: int) -> None:
    start, end = utc("2026-06-02T00:00:00+08:00"), utc("2026-06-02T10:30:00+08:00")
    series = queries.device_readings(conn, PV_DEVICE, "active_power_w", start, end, points)
    row = conn.execute(
        "SELECT count(*), sum(value)::float8, min(value)::float8, max(value)::float8 FROM readings "
        "WHERE device_id = %s AND metric = 3 AND ts >= %s AND ts < %s", [PV_DEVICE, start, end]).fetchone()
    assert row is not None
    n, total, low, high = row
    assert n == 630  # one a minute
    assert 0 < len(series.buckets) <= points
    assert sum(b.n for b in series.buckets) == n
    assert sum(b.avg * b.n for b in series.buckets) == pytest.approx(total, rel=1e-9)
    assert min(b.min for b in series.buckets) == low and max(b.max for b in series.buckets) == high
    starts = [b.start for b in series.buckets]
    assert starts == sorted(starts) and starts[0] >= start and starts[-1] < end
    assert all(b.min <= b.avg <= b.max for b in series.buckets)
    assert series.unit == "W" and series.bucket_s * points >= (end - start).total_seconds()


def test_readings_refuse_bad_input(conn: psycopg.Connection) -> None:
    start = utc("2026-06-02T00:00:00+00:00")
    with pytest.raises(ValueError, match="unknown metric"):
        queries.device_readings(conn, PV_DEVICE, "volts")
    with pytest.raises(ValueError, match="before end"):
        queries.device_readings(conn, PV_DEVICE, "active_power_w", start, start)
    with pytest.raises(queries.NotFound):
        queries.device_readings(conn, "ghost", "active_power_w")
    latest = queries.device_readings(conn, PV_DEVICE, "energy_export_wh", points=24)
    assert latest.end - latest.start == dt.timedelta(days=1) and len(latest.buckets) == 24


def test_quarantine_pages_newest_first_with_filters(conn: psycopg.Connection) -> None:
    seen, before = [], None
    while True:
        page = queries.list_quarantine(conn, limit=4, before_id=before)
        seen += page.items
        if page.next_before is None:
            break
        before = page.next_before
    assert [i.id for i in seen] == sorted((i.id for i in seen), reverse=True)
    assert len(seen) == len({i.id for i in seen}) == sum(QUARANTINE.values())
    item = seen[0]
    assert item.raw_size == 40 and len(item.raw_head_hex) == 64 and len(item.raw_sha256) == 64
    assert not hasattr(item, "raw")
    assert {i.reason for i in queries.list_quarantine(conn, reason="malformed_cbor").items} == {"malformed_cbor"}
    assert len(queries.list_quarantine(conn, device_id=WIND_DEVICE).items) == 3
    counts = queries.quarantine_counts(conn)
    assert counts.total == 6
    assert [(r.reason, r.count) for r in counts.by_reason] == [("bad_signature", 3), ("malformed_cbor", 2),
                                                               ("unknown_device", 1)]
    assert {(d.device_id, d.reason): d.count for d in counts.by_device} == QUARANTINE


def test_checkpoints_are_verified_and_consistent(conn: psycopg.Connection, console_seed: SeedDatabase) -> None:
    seeded = console_seed.seeded
    small, large = seeded.checkpoint_sizes
    listed = queries.list_checkpoints(conn, seeded.log_vkey)
    assert [c.size for c in listed] == [large, small]
    assert all(c.signature == "verified" and c.root_matches_note for c in listed)
    assert (listed[0].previous_size, listed[0].consistent_with_previous) == (small, True)
    assert listed[1].consistent_with_previous is None
    assert [(a.ledger, a.status, a.receipt_matches_checkpoint) for c in listed for a in c.anchors] == \
        [("local", "confirmed", True)] * 2

    other_key = Signer.generate("console.test/mrv-log").verifier.vkey
    assert {c.signature for c in queries.list_checkpoints(conn, other_key)} == {"invalid"}
    assert {c.signature for c in queries.list_checkpoints(conn, None)} == {"unchecked"}

    # a stored root that is not the tree's: the note no longer matches, and the proof fails
    conn.execute("UPDATE checkpoints SET root = %s WHERE size = %s", [bytes(32), large])
    tampered = queries.list_checkpoints(conn, seeded.log_vkey, limit=1)[0]
    assert not tampered.root_matches_note and tampered.consistent_with_previous is False
    assert tampered.consistency_error


def test_periods_are_the_months_with_data(conn: psycopg.Connection) -> None:
    periods = queries.list_periods(conn, PV_PROJECT, utc_offset_minutes=480)
    assert [(p.period, str(p.first_day), str(p.last_day)) for p in periods] == [("2026-06", "2026-06-01",
                                                                                 "2026-06-30")]
    assert periods[0].envelopes == queries.get_device(conn, PV_DEVICE).envelopes
    projects = {p.id: p for p in queries.list_projects(conn)}
    assert set(projects) == {PV_PROJECT, WIND_PROJECT} and projects[PV_PROJECT].devices == 1
    with pytest.raises(queries.NotFound):
        queries.list_periods(conn, "nope")


def _raw_counts(conn: psycopg.Connection, offset_minutes: int) -> tuple[object, ...]:
    """What the console's counts must equal: every row counted."""
    return (
        conn.execute("SELECT d.id, count(e.id) FROM devices d LEFT JOIN envelopes e ON e.device_id = d.id "
                     "GROUP BY 1 ORDER BY 1").fetchall(),
        conn.execute("SELECT device_id, count(*) FROM readings GROUP BY 1 ORDER BY 1").fetchall(),
        conn.execute("SELECT metric, count(*), min(ts), max(ts) FROM readings WHERE device_id = %s GROUP BY 1 "
                     "ORDER BY 1", [PV_DEVICE]).fetchall(),
        conn.execute("SELECT date_trunc('month', e.device_time AT TIME ZONE 'UTC' + make_interval(mins => %s))::date, "
                     "count(*) FROM envelopes e JOIN devices d ON d.id = e.device_id WHERE d.project_id = %s "
                     "GROUP BY 1 ORDER BY 1 DESC", [offset_minutes, PV_PROJECT]).fetchall(),
        conn.execute("SELECT p.id, count(e.id) FROM projects p LEFT JOIN devices d ON d.project_id = p.id "
                     "LEFT JOIN envelopes e ON e.device_id = d.id GROUP BY 1 ORDER BY 1").fetchall())


def _console_counts(conn: psycopg.Connection, offset_minutes: int) -> tuple[object, ...]:
    devices = queries.list_devices(conn)
    names = {info.metric.value: name for name, info in queries.METRICS_BY_NAME.items()}
    metric_ids = {name: m for m, name in names.items()}
    pv = queries.get_device(conn, PV_DEVICE)
    return (
        sorted((d.id, d.envelopes) for d in devices),
        sorted((d.id, d.readings) for d in devices if d.readings),
        [(metric_ids[m.metric], m.readings, m.first, m.last) for m in pv.metrics],
        [(p.first_day, p.envelopes) for p in queries.list_periods(conn, PV_PROJECT, offset_minutes)],
        [(p.id, p.envelopes) for p in queries.list_projects(conn)])


@pytest.mark.parametrize("offset_minutes", [480, -300])
def test_counts_from_the_rollups_equal_counting_every_row(conn: psycopg.Connection, offset_minutes: int) -> None:
    """The pages count from the packed rollups and read raw rows only for days touched since the last
    refresh (migration 0008): equal to counting every row, whatever has been packed."""
    # A month of the project clock that begins inside a packed UTC day: its envelopes are split there.
    conn.execute("UPDATE envelopes SET device_time = device_time - interval '40 days' "
                 "WHERE device_id = %s AND seq %% 7 = 0", [PV_DEVICE])
    conn.execute("UPDATE readings SET ts = ts - interval '40 days' WHERE envelope_id IN "
                 "(SELECT id FROM envelopes WHERE device_id = %s AND seq %% 7 = 0)", [PV_DEVICE])
    raw = _raw_counts(conn, offset_minutes)
    assert len(raw[3]) >= 2, "the data should span two months"

    conn.execute("UPDATE rollup_watermark SET (txid, envelope_id) = ('0', 0)")  # nothing packed is current
    assert _console_counts(conn, offset_minutes) == raw
    conn.execute("SELECT refresh_rollups()")  # everything packed
    assert conn.execute("SELECT count(*) FROM rollup_pending()").fetchone() == (0,)
    split = conn.execute("SELECT count(*) FROM envelopes_packed WHERE date_trunc('month', day + make_interval(mins "
                         "=> %(o)s)) <> date_trunc('month', day + make_interval(days => 1, mins => %(o)s, secs => -1))",
                         {"o": offset_minutes}).fetchone()
    assert split is not None and split[0] > 0, "no packed day holds the start of a month"
    assert _console_counts(conn, offset_minutes) == raw
    # Half the envelopes touched since: their days' packs are stale (made wrong here) and must be ignored.
    conn.execute("UPDATE rollup_watermark SET (txid, envelope_id) = (SELECT txid, id FROM envelopes "
                 "ORDER BY txid, id OFFSET (SELECT count(*) / 2 FROM envelopes) LIMIT 1)")
    stale = conn.execute("SELECT count(DISTINCT (device_id, day)) FROM rollup_pending()").fetchone()
    assert stale is not None and stale[0] > 0
    conn.execute("UPDATE envelopes_packed p SET n = n + 1000 FROM rollup_pending() d "
                 "WHERE d.metric IS NULL AND d.device_id = p.device_id AND d.day = p.day")
    conn.execute("UPDATE readings_frames f SET counts = array_fill(1000, ARRAY[cardinality(counts)]) "
                 "FROM rollup_pending() d WHERE d.metric IS NOT NULL AND d.device_id = f.device_id AND d.day = f.day")
    assert _console_counts(conn, offset_minutes) == raw
