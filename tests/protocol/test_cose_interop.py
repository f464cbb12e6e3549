"""Interop with an independent COSE implementation (pycose; needs cbor2 5.x, see ARCHITECTURE.md)."""

from __future__ import annotations

from pycose.algorithms import EdDSA
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

from protocol import GENESIS_PREV, Ed25519Signer, Metric, Payload, Reading, sign_envelope, verify_envelope
from protocol.envelope import encode_payload

SIGNER = Ed25519Signer(bytes(range(32)))
PAYLOAD = Payload("meter-1", 3, GENESIS_PREV, 1_700_000_000_000,
                  (Reading(Metric.ENERGY_EXPORT_WH, 1_700_000_000_000, 10_000),
                   Reading(Metric.ACTIVE_POWER_W, 1_700_000_000_000, 2500.0)))


def test_project_envelope_verifies_with_pycose() -> None:
    message = Sign1Message.decode(sign_envelope(PAYLOAD, SIGNER))
    message.key = OKPKey(crv=Ed25519, x=SIGNER.public_key)
    assert message.verify_signature()
    assert message.phdr[KID] == SIGNER.kid
    assert message.payload == encode_payload(PAYLOAD)


def test_pycose_envelope_verifies_in_the_project() -> None:
    message = Sign1Message(phdr={Algorithm: EdDSA, KID: SIGNER.kid}, payload=encode_payload(PAYLOAD))
    message.key = OKPKey(crv=Ed25519, x=SIGNER.public_key, d=SIGNER.seed)
    raw = message.encode()
    assert verify_envelope(raw, SIGNER.public_key).payload == PAYLOAD
    assert raw == sign_envelope(PAYLOAD, SIGNER)  # Ed25519 is deterministic: same bytes both ways
