"""The batch transaction against the real PostgreSQL, without a broker: what lands in each table."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from ingest.decide import Accept, Duplicate, EnvelopeFlag, Message, Policy, Quarantine
from ingest.errors import DatabaseUnavailable
from ingest.pipeline import Ingestor
from ingest.screening import Screener
from ingest.store import Store
from managed_services.postgres import Postgres
from protocol import MAX_ENVELOPE_BYTES, Metric, Payload, Reading, Reason, envelope_hash, sign_envelope
from tests.ingest.helpers import Device, enroll, now_ms

pytestmark = pytest.mark.integration


@pytest.fixture
def ingestor(pg_conninfo: str) -> Iterator[Ingestor]:
    ing = Ingestor(Store(pg_conninfo), Screener(Policy(), 0, 0))
    yield ing
    ing.close()


def test_envelopes_are_stored_verbatim_with_readings_exact(pg_conninfo: str, ingestor: Ingestor) -> None:
    device = Device("meter-1", "plant-1")
    enroll(pg_conninfo, [device])
    t = now_ms()
    huge = 2**62 + 1  # beyond a double's exact integers: a register must stay exact to the last Wh
    raw = sign_envelope(Payload("meter-1", 0, bytes(32), t, (Reading(Metric.ENERGY_EXPORT_WH, t, huge),
                                                             Reading(Metric.ACTIVE_POWER_W, t - 1, 0.1))),
                        device.signer)
    result = ingestor.process([Message(device.topic, raw, t + 5)])
    assert (result.stored, result.readings) == (1, 2)
    with psycopg.connect(pg_conninfo) as conn:
        row = conn.execute("SELECT raw, hash, prev, kid, seq, flags, txid IS NOT NULL, "
                           "extract(epoch FROM device_time) * 1000, extract(epoch FROM received_at) * 1000 "
                           "FROM envelopes").fetchone()
        readings = conn.execute("SELECT metric, value, extract(epoch FROM ts) * 1000 FROM readings "
                                "ORDER BY metric DESC").fetchall()
    assert row is not None
    assert row[:7] == (raw, envelope_hash(raw), bytes(32), device.signer.kid, 0, 0, True)
    assert (int(row[7]), int(row[8])) == (t, t + 5)
    assert [(m, v, int(ts)) for m, v, ts in readings] == [(3, Decimal("0.1"), t - 1), (2, huge, t)]
    assert float(readings[0][1]) == 0.1  # the shortest decimal converts back to the same double


def test_one_batch_with_repeats_and_refusals(pg_conninfo: str, ingestor: Ingestor) -> None:
    device = Device("meter-1", "plant-1")
    enroll(pg_conninfo, [device])
    e0, e1 = device.next(), device.next()
    big = b"\x00" * (MAX_ENVELOPE_BYTES + 10)
    messages = [Message(device.topic, e0, now_ms()), Message(device.topic, e0, now_ms()),
                Message(device.topic, e1, now_ms()), Message(device.topic, big, now_ms())]
    result = ingestor.process(messages)
    assert [type(d) for d in result.decisions] == [Accept, Duplicate, Accept, Quarantine]
    assert (result.stored, result.duplicates, result.quarantined) == (2, 1, ["too_large"])
    with psycopg.connect(pg_conninfo) as conn:
        q = conn.execute("SELECT reason, device_id, seq, topic, raw_size, length(raw) "
                         "FROM quarantine").fetchone()
        head = conn.execute("SELECT last_seq, last_hash FROM device_chain").fetchone()
    assert q == ("too_large", "meter-1", None, device.topic, MAX_ENVELOPE_BYTES + 10, MAX_ENVELOPE_BYTES)
    assert head == (1, envelope_hash(e1))
    again = ingestor.process(messages[:3])
    assert (again.stored, again.duplicates) == (0, 3)


def test_a_backlog_is_flagged_as_skewed_but_stored(pg_conninfo: str, ingestor: Ingestor) -> None:
    device = Device("meter-1", "plant-1")
    enroll(pg_conninfo, [device])
    result = ingestor.process([Message(device.topic, device.next(now_ms() - 3_600_000), now_ms())])
    assert result.stored == 1
    decision = result.decisions[0]
    assert isinstance(decision, Accept) and decision.flags == EnvelopeFlag.CLOCK_SKEW
    other = ingestor.process([Message(device.topic, device.build(0, bytes(32)), now_ms())])
    assert other.quarantined == [Reason.REPLAY_CONFLICT.value]


def test_an_unreachable_database_is_reported_as_retryable(postgres_session: Postgres) -> None:
    store = Store(postgres_session.conninfo("mrv").replace(f"port={postgres_session.port}", "port=1"))
    with pytest.raises(DatabaseUnavailable):
        store.registry_version()


def test_kill_9_of_postgres_keeps_what_was_committed(pg_conninfo: str, postgres_session: Postgres,
                                                     ingestor: Ingestor) -> None:
    device = Device("meter-1", "plant-1")
    enroll(pg_conninfo, [device])
    assert ingestor.process([Message(device.topic, device.next(), now_ms())]).stored == 1
    postgres_session.kill()
    with pytest.raises(DatabaseUnavailable):
        ingestor.process([Message(device.topic, device.next(), now_ms())])
    postgres_session.start()
    retried = ingestor.process([Message(device.topic, device.build(1, device.prev), now_ms())])
    assert retried.stored == 1  # the connection came back by itself; the first commit survived the crash
    with psycopg.connect(pg_conninfo) as conn:
        assert conn.execute("SELECT array_agg(seq ORDER BY seq) FROM envelopes").fetchone() == ([0, 1],)
