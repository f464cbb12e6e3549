"""The pure decisions: every screening reason in its own case, and the chain rules."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.decide import (
    Accept,
    Admitted,
    ChainEventKind,
    ChainHead,
    ChainTracker,
    Duplicate,
    EnvelopeFlag,
    KeyInfo,
    KeyStatus,
    Message,
    Policy,
    Quarantine,
    RegistryView,
    StoredLink,
    links_needed,
    screen,
)
from protocol import MAX_ENVELOPE_BYTES, Ed25519Signer, Reason, envelope_hash, state_topic, up_topic
from tests.ingest.helpers import Device

NOW = 1_767_225_600_000
DAY = 86_400_000
POLICY = Policy(future_tolerance_ms=300_000, clock_skew_ms=120_000)


def key(device: Device, *, valid_from: int = NOW - DAY, valid_until: int | None = None,
        status: KeyStatus = KeyStatus.ACTIVE, signer: Ed25519Signer | None = None) -> KeyInfo:
    s = signer or device.signer
    return KeyInfo(s.kid, device.device_id, s.public_key, valid_from, valid_until, status)


def registry(*keys: KeyInfo, projects: dict[str, str] | None = None) -> RegistryView:
    return RegistryView(1, projects or {"meter-1": "plant-1", "meter-2": "plant-1"}, {k.kid: k for k in keys})


@pytest.fixture
def dev() -> Device:
    return Device("meter-1", "plant-1")


def reason(result: Admitted | Quarantine) -> Reason | None:
    return result.reason if isinstance(result, Quarantine) else None


def test_a_valid_envelope_is_admitted_with_its_readings(dev: Device) -> None:
    raw = dev.build(0, bytes(32), NOW)
    result = screen(Message(dev.topic, raw, NOW + 1000), registry(key(dev)), POLICY)
    assert isinstance(result, Admitted)
    assert (result.device_id, result.seq, result.hash, result.flags) == ("meter-1", 0, envelope_hash(raw), 0)
    assert len(result.readings) == 10 and result.kid == dev.signer.kid


def test_reasons_each_in_their_own_case(dev: Device) -> None:
    other = Device("meter-2", "plant-1")
    stranger = Ed25519Signer.generate()
    reg = registry(key(dev), key(other))
    raw = dev.build(0, bytes(32), NOW)
    forged = bytearray(raw)
    forged[-1] ^= 1
    unenrolled = Device("meter-9", "plant-1")
    cases = {
        Reason.BAD_TOPIC: Message("mrv/v1/plant-1/meter-1", raw, NOW),
        Reason.TOO_LARGE: Message(dev.topic, raw + bytes(MAX_ENVELOPE_BYTES), NOW),
        Reason.MALFORMED_CBOR: Message(dev.topic, b"\xff\x00", NOW),
        Reason.BAD_SIGNATURE: Message(dev.topic, bytes(forged), NOW),
        Reason.TOPIC_MISMATCH: Message(up_topic("plant-1", "meter-2"), raw, NOW),
        Reason.UNKNOWN_DEVICE: Message(unenrolled.topic, unenrolled.build(0, bytes(32), NOW), NOW),
        Reason.PROJECT_MISMATCH: Message(up_topic("plant-2", "meter-1"), raw, NOW),
        Reason.UNKNOWN_KEY: Message(dev.topic, dev.build(0, bytes(32), NOW, signer=stranger), NOW),
        Reason.KEY_WRONG_DEVICE: Message(dev.topic, dev.build(0, bytes(32), NOW, signer=other.signer), NOW),
        Reason.FUTURE_TIMESTAMP: Message(dev.topic, dev.build(0, bytes(32), NOW + 600_000), NOW),
    }
    for expected, message in cases.items():
        assert reason(screen(message, reg, POLICY)) is expected, expected


def test_state_topic_is_not_an_envelope_topic(dev: Device) -> None:
    result = screen(Message(state_topic("plant-1", "meter-1"), dev.build(0, bytes(32), NOW), NOW),
                    registry(key(dev)), POLICY)
    assert reason(result) is Reason.BAD_TOPIC


def test_key_status_and_validity_window(dev: Device) -> None:
    raw = dev.build(0, bytes(32), NOW)
    msg = Message(dev.topic, raw, NOW)
    assert reason(screen(msg, registry(key(dev, status=KeyStatus.REVOKED)), POLICY)) is Reason.KEY_REVOKED
    # Signed inside the window, arriving after it closed: both times must be inside.
    closed = key(dev, valid_until=NOW - 1)
    assert reason(screen(msg, registry(closed), POLICY)) is Reason.KEY_NOT_VALID_AT_TIME
    late = Message(dev.topic, dev.build(0, bytes(32), NOW - 10_000), NOW)
    expired = registry(key(dev, valid_until=NOW - 5_000))
    assert reason(screen(late, expired, POLICY)) is Reason.KEY_NOT_VALID_AT_TIME
    before = key(dev, valid_from=NOW + 1)
    assert reason(screen(msg, registry(before), POLICY)) is Reason.KEY_NOT_VALID_AT_TIME
    assert isinstance(screen(msg, registry(key(dev, valid_until=NOW + 1)), POLICY), Admitted)


def test_forged_signature_is_reported_before_key_status(dev: Device) -> None:
    forged = bytearray(dev.build(0, bytes(32), NOW))
    forged[-5] ^= 0x10
    revoked = registry(key(dev, status=KeyStatus.REVOKED))
    assert reason(screen(Message(dev.topic, bytes(forged), NOW), revoked, POLICY)) is Reason.BAD_SIGNATURE


def test_clock_tolerances(dev: Device) -> None:
    reg = registry(key(dev))
    at_limit = screen(Message(dev.topic, dev.build(0, bytes(32), NOW + 300_000), NOW), reg, POLICY)
    assert isinstance(at_limit, Admitted) and at_limit.flags == EnvelopeFlag.CLOCK_SKEW
    slightly = screen(Message(dev.topic, dev.build(0, bytes(32), NOW - 60_000), NOW), reg, POLICY)
    assert isinstance(slightly, Admitted) and slightly.flags == 0
    backlog = screen(Message(dev.topic, dev.build(0, bytes(32), NOW - 3_600_000), NOW), reg, POLICY)
    assert isinstance(backlog, Admitted) and backlog.flags == EnvelopeFlag.CLOCK_SKEW
    with pytest.raises(ValueError):
        Policy(future_tolerance_ms=-1)


def test_a_reading_in_the_future_is_refused_even_when_the_device_time_is_fine(dev: Device) -> None:
    from protocol import Metric, Payload, Reading, sign_envelope

    payload = Payload("meter-1", 0, bytes(32), NOW, (Reading(Metric.ENERGY_EXPORT_WH, NOW + DAY, 5),))
    result = screen(Message(dev.topic, sign_envelope(payload, dev.signer), NOW), registry(key(dev)), POLICY)
    assert reason(result) is Reason.FUTURE_TIMESTAMP


# -- the chain ---------------------------------------------------------------------------------------


def admitted(dev: Device, seq: int, prev: bytes) -> Admitted:
    result = screen(Message(dev.topic, dev.build(seq, prev, NOW), NOW), registry(key(dev)), POLICY)
    assert isinstance(result, Admitted)
    return result


def chain(dev: Device, n: int) -> list[Admitted]:
    out: list[Admitted] = []
    prev = bytes(32)
    for seq in range(n):
        out.append(admitted(dev, seq, prev))
        prev = out[-1].hash
    return out


def kinds(decision: object) -> list[ChainEventKind]:
    assert isinstance(decision, Accept)
    return [e.kind for e in decision.events]


def test_an_unbroken_chain_is_accepted_without_events(dev: Device) -> None:
    tracker = ChainTracker({}, {})
    for e in chain(dev, 5):
        decision = tracker.decide(e)
        assert isinstance(decision, Accept) and not decision.events and decision.flags == 0
    assert tracker.changed_heads()["meter-1"].last_seq == 4


def test_duplicate_and_replay_conflict(dev: Device) -> None:
    first = chain(dev, 1)[0]
    stored = {("meter-1", 0): StoredLink(first.hash, first.prev)}
    tracker = ChainTracker({"meter-1": ChainHead(0, first.hash)}, stored)
    assert isinstance(tracker.decide(first), Duplicate)
    other = admitted(dev, 0, b"\x01" * 32)
    conflict = tracker.decide(other)
    assert isinstance(conflict, Quarantine) and conflict.reason is Reason.REPLAY_CONFLICT
    assert (conflict.device_id, conflict.seq) == ("meter-1", 0)
    assert tracker.changed_heads() == {}


def test_gap_then_late_fill_checks_both_neighbours(dev: Device) -> None:
    e = chain(dev, 4)
    tracker = ChainTracker({}, {})
    tracker.decide(e[0])
    jump = tracker.decide(e[3])
    assert kinds(jump) == [ChainEventKind.GAP]
    assert isinstance(jump, Accept) and jump.flags == EnvelopeFlag.GAP_BEFORE
    assert (jump.events[0].seq_from, jump.events[0].seq_to) == (1, 2)
    assert kinds(tracker.decide(e[2])) == [ChainEventKind.LATE_FILL]  # links to 3 above; 1 below missing
    fill = tracker.decide(e[1])
    assert kinds(fill) == [ChainEventKind.LATE_FILL]
    assert tracker.changed_heads()["meter-1"] == ChainHead(3, e[3].hash)


def test_chain_breaks_are_recorded_and_flagged(dev: Device) -> None:
    good = chain(dev, 2)
    forked = admitted(dev, 2, b"\x07" * 32)
    tracker = ChainTracker({"meter-1": ChainHead(1, good[1].hash)}, {})
    decision = tracker.decide(forked)
    assert kinds(decision) == [ChainEventKind.CHAIN_BREAK]
    assert isinstance(decision, Accept) and decision.flags == EnvelopeFlag.CHAIN_BREAK
    wrong_start = admitted(Device("meter-1", "plant-1", signer=dev.signer), 0, b"\x09" * 32)
    assert kinds(ChainTracker({}, {}).decide(wrong_start)) == [ChainEventKind.CHAIN_BREAK]


def test_a_late_envelope_whose_successor_does_not_link_to_it(dev: Device) -> None:
    e = chain(dev, 3)
    impostor = admitted(dev, 1, e[0].hash)  # a different envelope 1 (other readings time)
    impostor = impostor._replace(hash=b"\x05" * 32)
    stored = {("meter-1", s): StoredLink(e[s].hash, e[s].prev) for s in (0, 2)}
    decision = ChainTracker({"meter-1": ChainHead(2, e[2].hash)}, stored).decide(impostor)
    assert kinds(decision) == [ChainEventKind.LATE_FILL, ChainEventKind.CHAIN_BREAK]
    assert isinstance(decision, Accept)
    assert decision.flags == EnvelopeFlag.LATE_FILL | EnvelopeFlag.CHAIN_BREAK


def test_first_envelope_seen_mid_chain_records_the_gap_before_it(dev: Device) -> None:
    e = chain(dev, 6)
    decision = ChainTracker({}, {}).decide(e[5])
    assert isinstance(decision, Accept)
    assert [(x.kind, x.seq_from, x.seq_to) for x in decision.events] == [(ChainEventKind.GAP, 0, 4)]


def test_links_needed_only_for_envelopes_at_or_below_the_head(dev: Device) -> None:
    e = chain(dev, 6)
    heads = {"meter-1": ChainHead(3, e[3].hash)}
    assert links_needed([e[4], e[5]], heads) == set()
    assert links_needed([e[3]], heads) == {("meter-1", 2), ("meter-1", 3)}
    assert links_needed([e[0]], heads) == {("meter-1", 0), ("meter-1", 1)}
    assert links_needed([e[1]], {}) == set()


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=12))
def test_any_arrival_order_with_replays_stores_each_envelope_once(rng: random.Random, n: int) -> None:
    dev = Device("meter-1", "plant-1", signer=Ed25519Signer(bytes(range(32))))
    envelopes = chain(dev, n)
    arrivals = envelopes + rng.sample(envelopes, k=rng.randint(0, n))
    rng.shuffle(arrivals)
    # Split the arrivals into batches; each batch sees what the database holds after the previous one.
    heads: dict[str, ChainHead] = {}
    stored: dict[tuple[str, int], StoredLink] = {}
    accepted: list[int] = []
    breaks = 0
    while arrivals:
        size = rng.randint(1, 4)
        batch, arrivals = arrivals[:size], arrivals[size:]
        needed = links_needed(batch, heads)
        tracker = ChainTracker(heads, {k: v for k, v in stored.items() if k in needed})
        for env in batch:
            decision = tracker.decide(env)
            assert not isinstance(decision, Quarantine)
            if isinstance(decision, Accept):
                accepted.append(env.seq)
                stored[(env.device_id, env.seq)] = StoredLink(env.hash, env.prev)
                breaks += sum(ev.kind is ChainEventKind.CHAIN_BREAK for ev in decision.events)
        heads.update(tracker.changed_heads())
    assert sorted(accepted) == list(range(n))
    assert heads["meter-1"] == ChainHead(n - 1, envelopes[-1].hash)
    assert breaks == 0  # reordering alone never looks like a broken chain
