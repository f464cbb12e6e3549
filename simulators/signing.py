"""Signed envelopes from simulated devices: reproducible device keys and per-device chains.

For samples, load generators and attack fixtures. Real gateways generate their keys at random and
keep them on the device (edge_agent.keystore); a key derived from a public seed protects nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from protocol.envelope import GENESIS_PREV, Payload, Reading, envelope_hash, sign_envelope
from protocol.ids import check_id
from protocol.keys import Ed25519Signer, Signer


def device_signer(seed: int, device_id: str) -> Ed25519Signer:
    """The key of simulated device `device_id` in the simulation seeded `seed` (same inputs, same key)."""
    check_id(device_id, "device id")
    return Ed25519Signer(hashlib.sha256(f"mrv-sim-device-key:{seed}:{device_id}".encode()).digest())


class EnvelopeChain:
    """Signs one device's envelopes in order: `seq` counts up by one and each `prev` is the hash of
    the envelope before, as the edge agent does (without its outbox)."""

    def __init__(self, device_id: str, signer: Signer, *, next_seq: int = 0,
                 prev: bytes = GENESIS_PREV) -> None:
        self.device_id = check_id(device_id, "device id")
        self.signer = signer
        self.next_seq = next_seq
        self.prev = prev

    def payload(self, readings: Sequence[Reading], device_time_ms: int) -> Payload:
        """The payload the next envelope would carry (does not advance the chain)."""
        return Payload(self.device_id, self.next_seq, self.prev, device_time_ms, tuple(readings))

    def sign(self, readings: Sequence[Reading], device_time_ms: int) -> bytes:
        """Sign the next envelope and advance the chain; returns the envelope bytes."""
        raw = sign_envelope(self.payload(readings, device_time_ms), self.signer)
        self.next_seq += 1
        self.prev = envelope_hash(raw)
        return raw
