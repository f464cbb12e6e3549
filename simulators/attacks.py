"""Envelope-level attacks: signed envelope bytes altered or misused on their way to ingest.

`attack_messages(attack, chain, readings, device_time_ms, ...)` returns what an attacker (or a
broken gateway) would publish, each message with the device id of the topic it goes out under.
Ingest tests publish them and check the outcome `EnvelopeAttack.expected` names: a quarantine
reason, or None where the right outcome is "stored once, counted once" (replay, reordering).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cbor2

from protocol.envelope import (
    ALG_EDDSA,
    COSE_SIGN1_TAG,
    FORMAT_VERSION,
    MAX_ENVELOPE_BYTES,
    Reading,
    parse_envelope,
    sign_envelope,
)
from protocol.errors import Reason
from protocol.keys import Signer
from protocol.metrics import Metric
from simulators.signing import EnvelopeChain, device_signer

FUTURE_SKEW_MS = 24 * 3_600_000  # far beyond any clock tolerance ingest may allow


class EnvelopeAttack(enum.StrEnum):
    TAMPERED_PAYLOAD = "tampered_payload"
    WRONG_KEY = "wrong_key"
    REPLAY = "replay"
    DUPLICATE_SEQ = "duplicate_seq"
    REORDERED = "reordered"
    TOPIC_SPOOFING = "topic_spoofing"
    OVERSIZED = "oversized"
    FUTURE_TIMESTAMP = "future_timestamp"

    @property
    def description(self) -> str:
        return _ATTACKS[self][0]

    @property
    def expected(self) -> Reason | None:
        """The quarantine reason ingest must give; None: accepted, but stored and counted once."""
        return _ATTACKS[self][1]


_ATTACKS: dict[EnvelopeAttack, tuple[str, Reason | None]] = {
    EnvelopeAttack.TAMPERED_PAYLOAD: ("one bit of the payload flipped after signing", Reason.BAD_SIGNATURE),
    EnvelopeAttack.WRONG_KEY: ("signed by a key never enrolled for the device", Reason.UNKNOWN_KEY),
    EnvelopeAttack.REPLAY: ("the same envelope bytes published twice", None),
    EnvelopeAttack.DUPLICATE_SEQ: ("a second, different envelope with the same seq, signed by the "
                                   "device's key", Reason.REPLAY_CONFLICT),
    EnvelopeAttack.REORDERED: ("two consecutive envelopes published in reverse order", None),
    EnvelopeAttack.TOPIC_SPOOFING: ("a device's envelope published under another device's topic",
                                    Reason.TOPIC_MISMATCH),
    EnvelopeAttack.OVERSIZED: (f"a validly signed envelope larger than {MAX_ENVELOPE_BYTES} bytes",
                               Reason.TOO_LARGE),
    EnvelopeAttack.FUTURE_TIMESTAMP: ("device time a day ahead, validly signed", Reason.FUTURE_TIMESTAMP),
}


@dataclass(frozen=True)
class AttackMessage:
    attack: EnvelopeAttack
    topic_device_id: str  # publish under mrv/v1/{project}/{topic_device_id}/up
    raw: bytes


def attack_messages(attack: EnvelopeAttack, chain: EnvelopeChain, readings: Sequence[Reading],
                    device_time_ms: int, *, other_device_id: str = "spoofed-device",
                    seed: int = 0) -> list[AttackMessage]:
    """The messages that carry out `attack` against the device `chain` signs for.

    Attacks that need legitimate envelopes (replay, reordering, duplicate, spoofing, tampering)
    sign them from `chain`, which advances; forged envelopes never advance it. `seed` makes the
    stranger's key of WRONG_KEY reproducible.
    """
    device = chain.device_id

    def message(raw: bytes, topic_device_id: str = device) -> AttackMessage:
        return AttackMessage(attack, topic_device_id, raw)

    match attack:
        case EnvelopeAttack.TAMPERED_PAYLOAD:
            return [message(flip_payload_bit(chain.sign(readings, device_time_ms)))]
        case EnvelopeAttack.WRONG_KEY:
            stranger = device_signer(seed, f"stranger-of-{device}")
            return [message(sign_envelope(chain.payload(readings, device_time_ms), stranger))]
        case EnvelopeAttack.REPLAY:
            raw = chain.sign(readings, device_time_ms)
            return [message(raw), message(raw)]
        case EnvelopeAttack.DUPLICATE_SEQ:
            original = chain.payload(readings, device_time_ms)
            first = chain.sign(readings, device_time_ms)
            forged = replace(original, device_time_ms=device_time_ms + 1,
                             readings=_inflated(original.readings))
            return [message(first), message(sign_envelope(forged, chain.signer))]
        case EnvelopeAttack.REORDERED:
            first = chain.sign(readings, device_time_ms)
            second = chain.sign(readings, device_time_ms + 1)
            return [message(second), message(first)]
        case EnvelopeAttack.TOPIC_SPOOFING:
            return [message(chain.sign(readings, device_time_ms), other_device_id)]
        case EnvelopeAttack.OVERSIZED:
            return [message(oversized_envelope(chain, readings, device_time_ms))]
        case EnvelopeAttack.FUTURE_TIMESTAMP:
            future = device_time_ms + FUTURE_SKEW_MS
            ahead = [replace(r, ts_ms=r.ts_ms + FUTURE_SKEW_MS) for r in readings]
            return [message(sign_envelope(chain.payload(ahead, future), chain.signer))]
    raise ValueError(f"unknown attack {attack!r}")


def flip_payload_bit(raw: bytes) -> bytes:
    """`raw` with the lowest bit of the payload's first `prev` byte flipped: still well-formed,
    canonical CBOR, so only the signature check can catch it."""
    parsed = parse_envelope(raw)
    prev_item = cbor2.dumps(parsed.payload.prev)  # the bstr header and the 32 bytes, as encoded
    at = raw.index(parsed.payload_bytes) + parsed.payload_bytes.index(prev_item) + len(prev_item) - 32
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:]


def oversized_envelope(chain: EnvelopeChain, readings: Sequence[Reading], device_time_ms: int) -> bytes:
    """A COSE_Sign1 validly signed by the device whose readings are repeated until the envelope
    exceeds MAX_ENVELOPE_BYTES. Built by hand: `sign_envelope` refuses such a payload."""
    rows = [[r.metric, r.ts_ms, r.value, r.quality] for r in readings]
    row_bytes = len(cbor2.dumps(rows[0]))
    repeated = rows * (MAX_ENVELOPE_BYTES // (row_bytes * len(rows)) + 2)
    payload = cbor2.dumps({1: FORMAT_VERSION, 2: chain.device_id, 3: chain.next_seq, 4: chain.prev,
                           5: device_time_ms, 6: repeated}, canonical=True)
    return _cose_sign1(payload, chain.signer)


def _cose_sign1(payload: bytes, signer: Signer) -> bytes:
    protected = cbor2.dumps({1: ALG_EDDSA, 4: signer.kid}, canonical=True)
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload], canonical=True)  # RFC 9052 §4.4
    signature = signer.sign(to_be_signed)
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]), canonical=True)


def _inflated(readings: Sequence[Reading]) -> tuple[Reading, ...]:
    """The same readings claiming 1 kWh more export: what a duplicate forged for gain looks like."""
    return tuple(replace(r, value=r.value + 1000) if r.metric == Metric.ENERGY_EXPORT_WH else r
                 for r in readings)
