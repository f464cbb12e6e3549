"""Envelope attacks produce exactly the misbehaviour they name, as the protocol layer sees it."""

from __future__ import annotations

import pytest

from edge_agent.sources.simulated import SimulatedSource
from protocol.envelope import (
    MAX_ENVELOPE_BYTES,
    Reading,
    VerifiedEnvelope,
    envelope_hash,
    parse_envelope,
    verify_envelope,
)
from protocol.errors import BadSignature, EnvelopeTooLarge, KeyMismatch, Reason
from protocol.metrics import Metric
from simulators.attacks import AttackMessage, EnvelopeAttack, attack_messages
from simulators.plant import PlantConfig, PlantKind
from simulators.signing import EnvelopeChain, device_signer
from tests.simulators.common import START

DEVICE = "dev-attacked"


def run(attack: EnvelopeAttack) -> tuple[EnvelopeChain, list[AttackMessage]]:
    chain = EnvelopeChain(DEVICE, device_signer(1, DEVICE))
    chain.sign(readings(), START - 60_000)  # some history, so prev is not the genesis hash
    return chain, attack_messages(attack, chain, readings(), START, seed=3)


def readings() -> list[Reading]:
    return SimulatedSource(PlantConfig(PlantKind.PV, 1), origin_ms=START - 60_000).read(START)


def public_key() -> bytes:
    return device_signer(1, DEVICE).public_key


def test_tampered_payload_fails_only_the_signature() -> None:
    _, [message] = run(EnvelopeAttack.TAMPERED_PAYLOAD)
    parse_envelope(message.raw)  # still well-formed, canonical CBOR
    with pytest.raises(BadSignature):
        verify_envelope(message.raw, public_key())


def test_wrong_key_is_a_valid_signature_by_a_stranger() -> None:
    chain, [message] = run(EnvelopeAttack.WRONG_KEY)
    parsed = parse_envelope(message.raw)
    assert parsed.kid != chain.signer.kid and parsed.payload.device_id == DEVICE
    with pytest.raises(KeyMismatch):
        verify_envelope(message.raw, public_key())
    assert verify_envelope(message.raw, device_signer(3, f"stranger-of-{DEVICE}").public_key)
    assert chain.next_seq == 1, "a forgery does not advance the device's chain"


def test_replay_is_the_same_bytes_twice() -> None:
    _, [first, second] = run(EnvelopeAttack.REPLAY)
    assert first.raw == second.raw
    verify_envelope(first.raw, public_key())


def test_duplicate_seq_is_a_different_validly_signed_envelope() -> None:
    _, [first, second] = run(EnvelopeAttack.DUPLICATE_SEQ)
    a, b = verify_envelope(first.raw, public_key()), verify_envelope(second.raw, public_key())
    assert (a.seq, a.payload.prev) == (b.seq, b.payload.prev)
    assert a.hash != b.hash

    def export(envelope: VerifiedEnvelope) -> int:
        return next(int(r.value) for r in envelope.payload.readings if r.metric == Metric.ENERGY_EXPORT_WH)

    assert export(b) == export(a) + 1000


def test_reordered_envelopes_still_chain() -> None:
    _, [late, early] = run(EnvelopeAttack.REORDERED)
    a, b = verify_envelope(early.raw, public_key()), verify_envelope(late.raw, public_key())
    assert (a.seq, b.seq) == (1, 2)
    assert b.payload.prev == envelope_hash(early.raw)


def test_topic_spoofing_publishes_under_another_device() -> None:
    _, [message] = run(EnvelopeAttack.TOPIC_SPOOFING)
    assert message.topic_device_id != DEVICE
    assert verify_envelope(message.raw, public_key()).device_id == DEVICE


def test_oversized_is_validly_signed_but_too_large() -> None:
    _, [message] = run(EnvelopeAttack.OVERSIZED)
    assert len(message.raw) > MAX_ENVELOPE_BYTES
    with pytest.raises(EnvelopeTooLarge):
        parse_envelope(message.raw)


def test_future_timestamp_is_validly_signed() -> None:
    _, [message] = run(EnvelopeAttack.FUTURE_TIMESTAMP)
    envelope = verify_envelope(message.raw, public_key())
    assert envelope.payload.device_time_ms >= START + 24 * 3_600_000
    assert all(r.ts_ms >= START + 24 * 3_600_000 for r in envelope.payload.readings)


def test_every_attack_says_what_ingest_must_do() -> None:
    assert {a: a.expected for a in EnvelopeAttack} == {
        EnvelopeAttack.TAMPERED_PAYLOAD: Reason.BAD_SIGNATURE, EnvelopeAttack.WRONG_KEY: Reason.UNKNOWN_KEY,
        EnvelopeAttack.REPLAY: None, EnvelopeAttack.DUPLICATE_SEQ: Reason.REPLAY_CONFLICT,
        EnvelopeAttack.REORDERED: None, EnvelopeAttack.TOPIC_SPOOFING: Reason.TOPIC_MISMATCH,
        EnvelopeAttack.OVERSIZED: Reason.TOO_LARGE, EnvelopeAttack.FUTURE_TIMESTAMP: Reason.FUTURE_TIMESTAMP}
    assert all(len(a.description) > 20 for a in EnvelopeAttack)


def test_attacks_are_reproducible() -> None:
    for attack in EnvelopeAttack:
        assert run(attack)[1] == run(attack)[1]
