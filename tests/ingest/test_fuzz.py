"""R6: random and mutated payloads through the decision and quarantine path: no crash, and every one
quarantined with a reason. A few thousand by default; 100,000 with --full."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decide import Admitted, KeyInfo, KeyStatus, Message, Policy, Quarantine, RegistryView, screen
from ingest.pipeline import Ingestor
from ingest.screening import Screener
from ingest.store import Store
from protocol import Ed25519Signer, EnvelopeError, Reason, envelope_hash, up_topic
from protocol.envelope import COSE_SIGN1_TAG, _sig_structure, decode_payload
from tests.ingest.helpers import Device, count, enroll, now_ms

SEED = 20261123
DEFAULT_CASES = 3000
FULL_CASES = 100_000


def _registry(device: Device) -> RegistryView:
    s = device.signer
    return RegistryView(1, {device.device_id: device.project_id},
                        {s.kid: KeyInfo(s.kid, device.device_id, s.public_key, 0, None, KeyStatus.ACTIVE)})


_CBOR_HEADS = [0x00, 0x18, 0x1F, 0x40, 0x5F, 0x7F, 0x9F, 0xBF, 0xD2, 0xFF]  # lengths, indefinite, tags, break


def _random_cbor(rng: random.Random, depth: int = 0) -> object:
    kinds: list[Callable[[], object]] = [
        lambda: rng.randint(-(2**64) + 1, 2**64 - 1),
        lambda: rng.random() * 10 ** rng.randint(-5, 30),
        lambda: rng.randbytes(rng.randint(0, 40)),
        lambda: "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 12))),
        lambda: rng.choice([None, True, False, float("nan"), float("inf")]),
    ]
    if depth < 3:
        kinds += [
            lambda: [_random_cbor(rng, depth + 1) for _ in range(rng.randint(0, 5))],
            lambda: {rng.randint(0, 8): _random_cbor(rng, depth + 1) for _ in range(rng.randint(0, 6))},
            lambda: cbor2.CBORTag(rng.choice([18, 24, 1, 2, 55799]), _random_cbor(rng, depth + 1)),
        ]
    return rng.choice(kinds)()


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    match rng.randrange(7):
        case 0:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
        case 1:  # truncation
            del data[rng.randrange(len(data)):]
        case 2:  # insertion
            i = rng.randrange(len(data) + 1)
            data[i:i] = rng.randbytes(rng.randint(1, 16))
        case 3:  # deletion
            i = rng.randrange(len(data))
            del data[i:i + rng.randint(1, 16)]
        case 4:  # a slice duplicated
            i = rng.randrange(len(data))
            data[i:i] = data[i:i + rng.randint(1, 32)]
        case 5:  # one byte set to a CBOR-significant value
            data[rng.randrange(len(data))] = rng.choice(_CBOR_HEADS)
        case _:  # trailing bytes
            data += rng.randbytes(rng.randint(1, 8))
    return bytes(data)


def fuzz_messages(device: Device, n: int, seed: int = SEED) -> Iterator[tuple[str, Message]]:
    """(kind, message) pairs: mutated valid envelopes, random CBOR, random bytes, odd topics."""
    rng = random.Random(seed)
    valid = [device.build(seq, envelope_hash(bytes([seq])), now_ms()) for seq in range(20)]
    for _ in range(n):
        roll = rng.random()
        topic = device.topic
        if roll < 0.70:
            original = rng.choice(valid)
            kind, raw = "mutated", _mutate(rng, original)
            while raw == original:  # e.g. a byte set to the value it had
                raw = _mutate(rng, original)
        elif roll < 0.85:
            kind, raw = "random_cbor", cbor2.dumps(_random_cbor(rng))
        elif roll < 0.95:
            kind, raw = "random_bytes", rng.randbytes(rng.randint(0, 600))
        else:
            kind, raw = "odd_topic", rng.choice(valid)
            topic = rng.choice(["", "mrv/v1", "mrv/v1/+/x/up", "mrv/v2/p/d/up", f"mrv/v1/p/{'d' * 70}/up",
                                up_topic(device.project_id, device.device_id) + "/extra",
                                "\u00e9/\U0001f600"])
        yield kind, Message(topic, raw, now_ms())


def _screen_all(device: Device, n: int) -> Counter[Reason]:
    registry, policy = _registry(device), Policy()
    reasons: Counter[Reason] = Counter()
    for kind, message in fuzz_messages(device, n):
        result = screen(message, registry, policy)
        assert not isinstance(result, Admitted), f"{kind} input admitted: {message.raw.hex()}"
        assert isinstance(result.reason, Reason)
        reasons[result.reason] += 1
    return reasons


def test_fuzzed_payloads_are_all_quarantined_with_a_reason(full_run: bool) -> None:
    device = Device("meter-1", "plant-1")
    n = FULL_CASES if full_run else DEFAULT_CASES
    reasons = _screen_all(device, n)
    assert sum(reasons.values()) == n
    # The mutations reach deep: signatures and payload validation, not only the CBOR decoder.
    deep = {Reason.MALFORMED_CBOR, Reason.NOT_COSE_SIGN1, Reason.BAD_SIGNATURE, Reason.BAD_TOPIC}
    assert deep <= set(reasons)


SIGNED = Device("meter-1", "plant-1", signer=Ed25519Signer(bytes(32)))


@st.composite
def _signed_junk_payloads(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Correctly signed envelopes around arbitrary CBOR payloads: the payload checks stand alone."""
    inner = draw(st.recursive(
        st.one_of(st.integers(), st.binary(max_size=40), st.text(max_size=10), st.floats(), st.none()),
        lambda children: st.one_of(st.lists(children, max_size=6),
                                   st.dictionaries(st.integers(0, 8), children, max_size=7)),
        max_leaves=25))
    payload_bytes = cbor2.dumps(inner)
    protected = cbor2.dumps({1: -8, 4: SIGNED.signer.kid}, canonical=True)
    signature = SIGNED.signer.sign(_sig_structure(protected, payload_bytes))
    raw = cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload_bytes, signature]))
    return raw, payload_bytes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_signed_junk_payloads())
def test_signed_junk_payloads_are_quarantined(case: tuple[bytes, bytes]) -> None:
    raw, payload_bytes = case
    result = screen(Message(SIGNED.topic, raw, now_ms()), _registry(SIGNED), Policy())
    try:
        decode_payload(payload_bytes)
    except EnvelopeError:
        assert isinstance(result, Quarantine) and result.reason is not Reason.BAD_SIGNATURE


@pytest.mark.integration
def test_fuzzed_payloads_through_the_store_are_quarantined_rows(pg_conninfo: str, full_run: bool) -> None:
    """The quarantine writer copes with whatever the decoder reports (NUL bytes, odd text, huge input)."""
    device = Device("meter-1", "plant-1")
    enroll(pg_conninfo, [device])
    n = 5000 if full_run else 600
    messages = [m for _, m in fuzz_messages(device, n, seed=SEED + 1)]
    messages.append(Message(device.topic, b"\x00" * 70_000, now_ms()))
    ingestor = Ingestor(Store(pg_conninfo), Screener(Policy(), 0, 0))
    try:
        for i in range(0, len(messages), 500):
            result = ingestor.process(messages[i:i + 500])
            assert result.stored == 0 and len(result.quarantined) == len(messages[i:i + 500])
    finally:
        ingestor.close()
    assert count(pg_conninfo, "quarantine") == len(messages)
    assert count(pg_conninfo, "envelopes") == 0
