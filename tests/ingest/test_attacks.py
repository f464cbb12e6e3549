"""R7, the attack catalogue, through the real Mosquitto and PostgreSQL and an ingest worker: each
attack is quarantined or flagged with its own reason, and nothing of it is stored as valid."""

from __future__ import annotations

import psycopg
import pytest

from ingest.registry import revoke_keys, rotate_key
from managed_services.mosquitto import Mosquitto
from protocol import MAX_ENVELOPE_BYTES, Ed25519Signer, PublicKeyRecord, Reason, envelope_hash, up_topic
from tests.ingest.helpers import Device, TestPublisher, count, enroll, now_ms, running_worker, wait_until

pytestmark = pytest.mark.integration


def _quarantine(conninfo: str) -> list[tuple[str, str | None, int | None, str]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT reason, device_id, seq, topic FROM quarantine ORDER BY id").fetchall()


def _envelopes(conninfo: str) -> dict[tuple[str, int], tuple[bytes, int]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT device_id, seq, hash, flags FROM envelopes").fetchall()
    return {(d, s): (h, f) for d, s, h, f in rows}


def test_attack_catalogue(pg_conninfo: str, mosquitto: Mosquitto, project_id: str) -> None:
    victim, other, revoked, expiring, shuffled, broken = (
        Device(name, project_id) for name in ("victim", "other", "revoked", "expiring", "shuffled", "broken"))
    enroll(pg_conninfo, [victim, other, revoked, expiring, shuffled, broken])
    stranger = Ed25519Signer.generate()
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        revoke_keys(conn, "revoked")
        # The old key's window closes now.
        rotate_key(conn, PublicKeyRecord("expiring", Ed25519Signer.generate().public_key))

    publisher = TestPublisher(mosquitto.port, "attacker")
    with running_worker(pg_conninfo, mosquitto.port) as worker:
        first = victim.next()
        publisher.publish([(victim.topic, first)])
        wait_until(lambda: count(pg_conninfo, "envelopes") == 1, 10, "the victim's first envelope")

        forged = bytearray(victim.build(1, victim.prev))
        forged[-1] ^= 0x01
        attacks: list[tuple[Reason | None, str, bytes]] = [
            (Reason.BAD_SIGNATURE, victim.topic, bytes(forged)),
            (Reason.UNKNOWN_KEY, victim.topic, victim.build(1, victim.prev, signer=stranger)),
            (Reason.KEY_WRONG_DEVICE, victim.topic, victim.build(1, victim.prev, signer=other.signer)),
            (Reason.KEY_REVOKED, revoked.topic, revoked.next()),
            (Reason.KEY_NOT_VALID_AT_TIME, expiring.topic, expiring.next(now_ms() + 1000)),
            (None, victim.topic, first),  # the same bytes again: an idempotent duplicate
            (Reason.REPLAY_CONFLICT, victim.topic, victim.build(0, bytes(32), now_ms() - 5000)),
            (Reason.TOPIC_MISMATCH, other.topic, victim.build(1, victim.prev)),
            (Reason.PROJECT_MISMATCH, up_topic("elsewhere", "victim"), victim.build(1, victim.prev)),
            (Reason.TOO_LARGE, victim.topic, b"\xa0" * (MAX_ENVELOPE_BYTES + 1)),
            (Reason.FUTURE_TIMESTAMP, victim.topic, victim.build(1, victim.prev, now_ms() + 3_600_000)),
            (Reason.UNKNOWN_DEVICE, up_topic(project_id, "ghost"), Device("ghost", project_id).next()),
        ]
        publisher.publish([(topic, raw) for _, topic, raw in attacks])
        expected = [reason for reason, _, _ in attacks if reason is not None]
        wait_until(lambda: count(pg_conninfo, "quarantine") == len(expected), 15, "every attack quarantined")

        # Reordered and broken chains are stored, with their events and flags.
        s0, s1, s2 = shuffled.next(), shuffled.next(), shuffled.next()
        b0 = broken.next()
        b1 = broken.build(1, envelope_hash(b"not the previous envelope"))
        publisher.publish([(shuffled.topic, s0), (shuffled.topic, s2), (shuffled.topic, s1),
                           (broken.topic, b0), (broken.topic, b1)])
        wait_until(lambda: count(pg_conninfo, "envelopes") == 6, 10, "the reordered and broken chains")
        duplicates = worker.metrics.duplicates
    publisher.close()

    assert [row[0] for row in _quarantine(pg_conninfo)] == [r.value for r in expected]
    quarantined = {row[0]: row for row in _quarantine(pg_conninfo)}
    assert quarantined[Reason.REPLAY_CONFLICT.value][1:3] == ("victim", 0)
    assert quarantined[Reason.TOPIC_MISMATCH.value][3] == other.topic
    stored = _envelopes(pg_conninfo)
    assert set(stored) == {("victim", 0), ("shuffled", 0), ("shuffled", 1), ("shuffled", 2), ("broken", 0),
                           ("broken", 1)}
    assert stored[("victim", 0)][0] == envelope_hash(first)
    assert count(pg_conninfo, "readings") == 6 * 10 and duplicates == 1  # the replay was not counted twice
    with psycopg.connect(pg_conninfo) as conn:
        events = conn.execute("SELECT device_id, kind, seq_from, seq_to FROM chain_events "
                              "ORDER BY id").fetchall()
    assert events == [("shuffled", "gap", 1, 1), ("shuffled", "late_fill", 1, 1),
                      ("broken", "chain_break", 0, 1)]
    flags = {key: f for key, (_, f) in stored.items() if f}
    assert flags == {("shuffled", 2): 2, ("shuffled", 1): 4, ("broken", 1): 1}  # EnvelopeFlag bits


def test_revocation_takes_effect_for_the_next_batch(pg_conninfo: str, mosquitto: Mosquitto,
                                                     project_id: str) -> None:
    device = Device("meter-1", project_id)
    enroll(pg_conninfo, [device])
    publisher = TestPublisher(mosquitto.port, "gateway")
    with running_worker(pg_conninfo, mosquitto.port):
        publisher.publish([(device.topic, device.next())])
        wait_until(lambda: count(pg_conninfo, "envelopes") == 1, 10, "the first envelope")
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            revoke_keys(conn, "meter-1")
        publisher.publish([(device.topic, device.next())])
        wait_until(lambda: count(pg_conninfo, "quarantine") == 1, 10, "the second envelope quarantined")
    publisher.close()
    assert _quarantine(pg_conninfo)[0][:3] == ("key_revoked", "meter-1", 1)
