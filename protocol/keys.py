"""Device identity: Ed25519 keys, key ids and the public-key record used for enrollment."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Protocol

import nacl.exceptions
import nacl.signing

from protocol.ids import check_id

KEY_ID_BYTES = 16
PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32
SIGNATURE_BYTES = 64


def key_id(public_key: bytes) -> bytes:
    """The `kid` of a key: the first 16 bytes of SHA-256 of the raw 32-byte public key."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has {PUBLIC_KEY_BYTES} bytes, not {len(public_key)}")
    return hashlib.sha256(public_key).digest()[:KEY_ID_BYTES]


class Signer(Protocol):
    """What signs envelopes; a file key today, a TPM or HSM later."""

    @property
    def public_key(self) -> bytes: ...

    @property
    def kid(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


class Ed25519Signer:
    """An in-memory Ed25519 key (the seed never leaves this object except through `seed`)."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 seed has {SEED_BYTES} bytes")
        self._key = nacl.signing.SigningKey(seed)
        self._public = bytes(self._key.verify_key)
        self._kid = key_id(self._public)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def seed(self) -> bytes:
        return bytes(self._key)

    @property
    def public_key(self) -> bytes:
        return self._public

    @property
    def kid(self) -> bytes:
        return self._kid

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message).signature)

    def __repr__(self) -> str:  # never show the seed
        return f"Ed25519Signer(kid={self._kid.hex()})"


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `message` by `public_key`."""
    if len(signature) != SIGNATURE_BYTES or len(public_key) != PUBLIC_KEY_BYTES:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class PublicKeyRecord:
    """The public half a gateway exports for enrollment (JSON file, safe to share)."""

    device_id: str
    public_key: bytes

    def __post_init__(self) -> None:
        check_id(self.device_id, "device id")
        key_id(self.public_key)  # validates the length

    @property
    def kid(self) -> bytes:
        return key_id(self.public_key)

    def to_json(self) -> str:
        return json.dumps({
            "device_id": self.device_id,
            "algorithm": "Ed25519",
            "kid": self.kid.hex(),
            "public_key": base64.b64encode(self.public_key).decode(),
        }, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PublicKeyRecord:
        try:
            data = json.loads(text)
            if data.get("algorithm") != "Ed25519":
                raise ValueError("algorithm must be Ed25519")
            record = cls(str(data["device_id"]), base64.b64decode(data["public_key"], validate=True))
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
            raise ValueError(f"not a device public-key record: {e}") from e
        if "kid" in data and data["kid"] != record.kid.hex():
            raise ValueError("the record's kid does not match its public key")
        return record
