"""Receipts of a committed batch: which seqs each device's agent may delete (pure), and the worker
publishing them after its commit (real broker and database)."""

from __future__ import annotations

import pytest

from ingest.decide import Accept, Admitted, Decision, Duplicate, Message, Quarantine
from ingest.receipts import batch_receipts
from managed_services.mosquitto import Mosquitto
from protocol import Reason, parse_receipt, receipt_topic, state_topic, up_topic
from protocol.topics import MAX_RECEIPT_RANGES
from tests.edge_agent.helpers import Collector
from tests.ingest.helpers import Device, TestPublisher, count, enroll, running_worker, wait_until


def admitted(device_id: str, seq: int) -> Admitted:
    return Admitted(device_id, seq, bytes(32), bytes(32), bytes(16), 0, (), 0)


def message(topic: str) -> Message:
    return Message(topic, b"raw", 0)


def receipts(pairs: list[tuple[Message, Decision]]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for topic, payload in batch_receipts([m for m, _ in pairs], [d for _, d in pairs]):
        out.setdefault(topic, []).extend(parse_receipt(payload))
    return out


def test_stored_duplicate_and_quarantined_are_all_receipted_per_device() -> None:
    a, b = up_topic("plant-1", "meter-a"), up_topic("plant-1", "meter-b")
    batch: list[tuple[Message, Decision]] = [
        (message(a), Accept(admitted("meter-a", 3), 0, ())),
        (message(a), Duplicate(admitted("meter-a", 1))),
        (message(a), Quarantine(Reason.BAD_SIGNATURE, "", "meter-a", 2)),
        (message(a), Accept(admitted("meter-a", 7), 0, ())),
        (message(b), Quarantine(Reason.REPLAY_CONFLICT, "", "meter-b", 0)),
        (message(b), Duplicate(admitted("meter-b", 0))),  # the same seq twice in a batch: one range
    ]
    assert receipts(batch) == {receipt_topic("plant-1", "meter-a"): [(1, 3), (7, 7)],
                               receipt_topic("plant-1", "meter-b"): [(0, 0)]}


def test_nothing_is_receipted_that_cannot_speak_for_the_topics_device() -> None:
    a = up_topic("plant-1", "meter-a")
    batch: list[tuple[Message, Decision]] = [
        (message(a), Quarantine(Reason.MALFORMED_CBOR, "", "meter-a", None)),  # no seq
        (message(a), Quarantine(Reason.TOPIC_MISMATCH, "", "meter-b", 5)),  # signed for another device
        (message("mrv/v1/plant-1"), Quarantine(Reason.BAD_TOPIC, "", None, None)),
        (message(state_topic("plant-1", "meter-a")), Quarantine(Reason.BAD_TOPIC, "", "meter-a", 4)),
        (message("not/ours/at/all/up"), Quarantine(Reason.BAD_TOPIC, "", "meter-a", 4)),
    ]
    assert receipts(batch) == {}


def test_a_long_list_of_ranges_is_split_over_several_receipts() -> None:
    a = up_topic("plant-1", "meter-a")
    seqs = range(0, 2 * (MAX_RECEIPT_RANGES + 10), 2)  # no two consecutive: one range each
    payloads = batch_receipts([message(a)] * len(seqs), [Accept(admitted("meter-a", s), 0, ()) for s in seqs])
    assert len(payloads) == 2
    assert [first for _, p in payloads for first, _ in parse_receipt(p)] == list(seqs)


def test_decisions_must_line_up_with_messages() -> None:
    with pytest.raises(ValueError):
        batch_receipts([message(up_topic("p", "d"))], [])


@pytest.mark.integration
def test_the_worker_receipts_what_it_committed(pg_conninfo: str, mosquitto: Mosquitto, project_id: str) -> None:
    device = Device("inv-1", project_id)
    enroll(pg_conninfo, [device])
    envelopes = [device.next() for _ in range(5)]
    forged = bytearray(envelopes[4])
    forged[-1] ^= 1
    # Stored 0-3, a duplicate of 1, a garbage payload (no seq: nothing to receipt), seq 4 with a bad signature.
    items = [(device.topic, raw) for raw in envelopes[:4]] + [
        (device.topic, envelopes[1]), (device.topic, b"\x00garbage"), (device.topic, bytes(forged))]
    receipts = Collector(mosquitto.port, receipt_topic(project_id, "inv-1"), "agent-inv-1")
    publisher = TestPublisher(mosquitto.port, "gateway")
    with running_worker(pg_conninfo, mosquitto.port):
        publisher.publish(items)
        wait_until(lambda: count(pg_conninfo, "quarantine") == 2, 30, "the batch to commit")
        wait_until(lambda: {s for p in receipts.payloads() for a, b in parse_receipt(p) for s in range(a, b + 1)}
                   == {0, 1, 2, 3, 4}, 10, "receipts of 0-4")
    publisher.close()
    receipts.close()
