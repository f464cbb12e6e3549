from __future__ import annotations

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    GENESIS_PREV,
    MAX_ENVELOPE_BYTES,
    Ed25519Signer,
    EnvelopeError,
    Metric,
    Payload,
    Reading,
    Reason,
    decode_payload,
    encode_payload,
    envelope_hash,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)
from protocol.envelope import _sig_structure
from tests.protocol.strategies import payloads

SIGNER = Ed25519Signer(bytes(range(32)))
OTHER = Ed25519Signer(bytes(range(1, 33)))
T0 = 1_700_000_000_000


def payload(**changes: object) -> Payload:
    base = {
        "device_id": "meter-1", "seq": 7, "prev": GENESIS_PREV, "device_time_ms": T0,
        "readings": (Reading(Metric.ENERGY_EXPORT_WH, T0, 123_456_789),
                     Reading(Metric.ENERGY_IMPORT_WH, T0, 4_321),
                     Reading(Metric.ACTIVE_POWER_W, T0, 1500.5),
                     Reading(Metric.IRRADIANCE_W_M2, T0, 812.25, 2)),
    }
    base.update(changes)
    return Payload(**base)  # type: ignore[arg-type]


def cose(protected: object, unprotected: object, payload_bytes: object, signature: object) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload_bytes, signature]))


def reason_of(raw: bytes, key: bytes = SIGNER.public_key) -> Reason:
    with pytest.raises(EnvelopeError) as info:
        verify_envelope(raw, key)
    return info.value.reason


def test_round_trip_keeps_every_field() -> None:
    original = payload()
    verified = verify_envelope(sign_envelope(original, SIGNER), SIGNER.public_key)
    assert verified.payload == original
    assert verified.kid == SIGNER.kid
    assert verified.hash == envelope_hash(verified.raw)


def test_same_input_gives_same_bytes() -> None:
    assert sign_envelope(payload(), SIGNER) == sign_envelope(payload(), SIGNER)


def test_hash_chain_links_by_envelope_bytes() -> None:
    first = sign_envelope(payload(seq=0), SIGNER)
    second = verify_envelope(sign_envelope(payload(seq=1, prev=envelope_hash(first)), SIGNER), SIGNER.public_key)
    assert second.payload.prev == envelope_hash(first)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_any_valid_payload_round_trips_deterministically(p: Payload) -> None:
    raw = sign_envelope(p, SIGNER)
    assert verify_envelope(raw, SIGNER.public_key).payload == p
    assert sign_envelope(p, SIGNER) == raw
    assert decode_payload(encode_payload(p)) == p


def test_every_single_flipped_bit_fails_verification() -> None:
    raw = sign_envelope(payload(), SIGNER)
    for bit in range(len(raw) * 8):
        mutated = bytearray(raw)
        mutated[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(EnvelopeError):
            verify_envelope(bytes(mutated), SIGNER.public_key)


def test_wrong_key_is_a_key_mismatch_and_forged_signature_is_bad_signature() -> None:
    raw = sign_envelope(payload(), SIGNER)
    assert reason_of(raw, OTHER.public_key) is Reason.KEY_MISMATCH
    parsed = parse_envelope(raw)
    forged = cose(parsed.protected, {}, parsed.payload_bytes, OTHER.sign(parsed.to_be_signed))
    assert reason_of(forged) is Reason.BAD_SIGNATURE


def _signed_payload_bytes(payload_bytes: bytes) -> bytes:
    protected = cbor2.dumps({1: -8, 4: SIGNER.kid})
    return cose(protected, {}, payload_bytes, SIGNER.sign(_sig_structure(protected, payload_bytes)))


def _payload_map(**changes: object) -> dict[int, object]:
    data: dict[int, object] = {1: 1, 2: "meter-1", 3: 7, 4: GENESIS_PREV, 5: T0, 6: [[2, T0, 100, 0]]}
    data.update({int(k[1:]): v for k, v in changes.items()})
    return data


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", Reason.MALFORMED_CBOR),
    (b"\xff\x00", Reason.MALFORMED_CBOR),
    (cbor2.dumps([1, 2, 3, 4]), Reason.NOT_COSE_SIGN1),
    (cbor2.dumps(cbor2.CBORTag(17, [b"", {}, b"", b""])), Reason.NOT_COSE_SIGN1),
    (cose(cbor2.dumps({1: -7, 4: bytes(16)}), {}, cbor2.dumps({}), bytes(64)), Reason.UNSUPPORTED_ALGORITHM),
    (cose(cbor2.dumps({1: -8}), {}, cbor2.dumps({}), bytes(64)), Reason.BAD_HEADER),
    (cose(cbor2.dumps({1: -8, 4: bytes(16)}), {4: b"x"}, cbor2.dumps({}), bytes(64)), Reason.BAD_HEADER),
    (cose(cbor2.dumps({1: -8, 4: bytes(16)}), {}, cbor2.dumps({}), bytes(10)), Reason.BAD_SIGNATURE),
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k1=2))), Reason.UNSUPPORTED_VERSION),
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k3=-1))), Reason.INVALID_PAYLOAD),
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k3="7"))), Reason.INVALID_PAYLOAD),
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k4=b"short"))), Reason.INVALID_PAYLOAD),
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k2="bad/id"))), Reason.INVALID_PAYLOAD),
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k6=[]))), Reason.INVALID_PAYLOAD),
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k6=[[99, T0, 1, 0]]))), Reason.UNKNOWN_METRIC),
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k6=[[2, T0, 1.5, 0]]))), Reason.INVALID_PAYLOAD),
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k6=[[3, T0, float("nan"), 0]]))), Reason.INVALID_PAYLOAD),
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k6=[[2, T0, 1, 1024]]))), Reason.INVALID_PAYLOAD),
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k6=[[2, T0, True, 0]]))), Reason.INVALID_PAYLOAD),
    (_signed_payload_bytes(cbor2.dumps({**_payload_map(), 7: 0})), Reason.INVALID_PAYLOAD),
    # a float that fits in half precision but is sent as a double: valid value, not deterministic
    (_signed_payload_bytes(cbor2.dumps(_payload_map(k6=[[3, T0, 1.5, 0]]))), Reason.NON_CANONICAL),
    (_signed_payload_bytes(cbor2.dumps(_payload_map()) + b"\x00"), Reason.TRAILING_BYTES),
])
def test_malformed_input_gives_the_right_typed_error(raw: bytes, reason: Reason) -> None:
    assert reason_of(raw) is reason


def test_trailing_bytes_after_the_envelope() -> None:
    assert reason_of(sign_envelope(payload(), SIGNER) + b"\x00") is Reason.TRAILING_BYTES


def test_oversized_envelope_is_refused_before_decoding() -> None:
    assert reason_of(b"\x00" * (MAX_ENVELOPE_BYTES + 1)) is Reason.TOO_LARGE


def test_encode_refuses_an_invalid_payload() -> None:
    with pytest.raises(EnvelopeError):
        encode_payload(payload(seq=-1))
    with pytest.raises(EnvelopeError):
        encode_payload(payload(readings=(Reading(Metric.ENERGY_EXPORT_WH, T0, 1.5),)))


def test_error_carries_device_and_seq_when_known() -> None:
    raw = sign_envelope(payload(seq=42), SIGNER)
    with pytest.raises(EnvelopeError) as info:
        verify_envelope(raw, OTHER.public_key)
    assert (info.value.device_id, info.value.seq) == ("meter-1", 42)
    assert "key_mismatch" in str(info.value)


def _decoder_examples() -> int:
    return 10_000


@settings(max_examples=_decoder_examples(), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_decoder_never_crashes_and_only_raises_typed_errors(data: st.DataObject) -> None:
    """10,000 examples: random bytes, random CBOR, and mutations of a valid envelope."""
    valid = sign_envelope(payload(), SIGNER)
    kind = data.draw(st.sampled_from(["bytes", "cbor", "flip", "truncate", "insert", "splice"]))
    if kind == "bytes":
        raw = data.draw(st.binary(max_size=512))
    elif kind == "cbor":
        leaves = st.one_of(st.integers(), st.binary(max_size=40), st.text(max_size=20), st.floats(),
                           st.booleans(), st.none())
        tree = st.recursive(leaves, lambda c: st.one_of(st.lists(c, max_size=5),
                                                        st.dictionaries(st.integers(0, 8), c, max_size=6)),
                            max_leaves=30)
        raw = cbor2.dumps(cbor2.CBORTag(18, data.draw(tree)))
    elif kind == "flip":
        at = data.draw(st.integers(0, len(valid) - 1))
        raw = valid[:at] + bytes([valid[at] ^ data.draw(st.integers(1, 255))]) + valid[at + 1:]
    elif kind == "truncate":
        raw = valid[: data.draw(st.integers(0, len(valid) - 1))]
    elif kind == "insert":
        at = data.draw(st.integers(0, len(valid)))
        raw = valid[:at] + data.draw(st.binary(min_size=1, max_size=8)) + valid[at:]
    else:
        at = data.draw(st.integers(0, len(valid) - 1))
        raw = valid[:at] + data.draw(st.binary(max_size=64))
    if raw == valid:
        return
    with pytest.raises(EnvelopeError) as info:
        verify_envelope(raw, SIGNER.public_key)
    assert isinstance(info.value.reason, Reason)
