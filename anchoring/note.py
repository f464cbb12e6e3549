"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and Go-compatible key strings.

A signed note is UTF-8 text ending in a newline, a blank line, then one line per signature:
"— <key name> <base64(4-byte key id || signature)>". The key id is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || public key), 0x01 being the Ed25519 signature type. Key strings
follow golang.org/x/mod/sumdb/note: "<name>+<hex key id>+<base64(0x01 || public key)>" for a
verifier and "PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>" for a signer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from anchoring.encoding import b64decode, b64encode
from anchoring.errors import BadSignature, MalformedKey, MalformedNote, UnknownSigner

ED25519: Final = b"\x01"
MAX_SIGNATURES: Final = 100
"""More signature lines than this make a note malformed (the spec requires accepting 16)."""

_SIG_PREFIX: Final = "\u2014 "  # em dash, space
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # ASCII controls other than newline


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise ValueError(f"invalid key name {name!r}: it must be non-empty, without spaces or '+'")


def _key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 public key under a name."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise ValueError("an Ed25519 public key has 32 bytes")

    @property
    def key_id(self) -> int:
        return _key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key string, safe to publish."""
        return f"{self.name}+{self.key_id:08x}+{b64encode(ED25519 + self.public_key)}"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        # Names cannot contain '+' but base64 can: split off the name and the key id only.
        name, key = _parse_key_string(vkey.split("+", 2), "verifier")
        return cls(name, key)

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            VerifyKey(self.public_key).verify(text, signature)
        except (BadSignatureError, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key under a name. Its repr never shows the key."""

    name: str
    key: SigningKey = field(repr=False)

    def __post_init__(self) -> None:
        _check_name(self.name)

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, SigningKey.generate())

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, bytes(self.key.verify_key))

    @property
    def skey(self) -> str:
        """The secret key string: store it in a 0600 file, never log it."""
        verifier = self.verifier
        return f"PRIVATE+KEY+{self.name}+{verifier.key_id:08x}+{b64encode(ED25519 + bytes(self.key))}"

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        parts = skey.split("+", 4)
        if parts[:2] != ["PRIVATE", "KEY"]:
            raise MalformedKey("a signer key starts with PRIVATE+KEY+")
        name, seed = _parse_key_string(parts[2:], "signer", derive_public=True)
        return cls(name, SigningKey(seed))

    def sign(self, text: bytes) -> bytes:
        return self.key.sign(text).signature


def _parse_key_string(parts: list[str], kind: str, *, derive_public: bool = False) -> tuple[str, bytes]:
    """(name, key bytes) from [name, hex key id, base64(0x01 || key)], with the key id checked."""
    if len(parts) != 3:
        raise MalformedKey(f"a {kind} key has the form name+keyid+key")
    name, key_id, encoded = parts
    try:
        _check_name(name)
        key = b64decode(encoded)
    except ValueError as e:
        raise MalformedKey(str(e)) from None
    if not _KEY_ID.fullmatch(key_id):
        raise MalformedKey("the key id is not 8 lowercase hex digits")
    if len(key) != 33 or key[:1] != ED25519:
        raise MalformedKey("only Ed25519 keys (type 0x01, 32 bytes) are supported")
    public = bytes(SigningKey(key[1:]).verify_key) if derive_public else key[1:]
    if _key_id(name, public) != int(key_id, 16):
        raise MalformedKey(f"the key id {key_id} does not belong to this key")
    return name, key[1:]


@dataclass(frozen=True)
class VerifiedNote:
    """A note text whose signature by each of `signers` has been verified."""

    text: str
    signers: tuple[Verifier, ...]


def _check_text(text: str) -> None:
    if not text.endswith("\n") or _CONTROL.search(text):
        raise ValueError("note text must end with a newline and contain no other control characters")


def sign_note(text: str, signer: Signer) -> bytes:
    """The signed note: `text`, a blank line, and `signer`'s signature line."""
    _check_text(text)
    message = text.encode()
    signature = signer.verifier.key_id.to_bytes(4, "big") + signer.sign(message)
    return message + f"\n{_SIG_PREFIX}{signer.name} {b64encode(signature)}\n".encode()


def open_note(note: bytes, verifiers: Sequence[Verifier]) -> VerifiedNote:
    """Parse a signed note and verify it against trusted keys.

    Signatures by keys not in `verifiers` are ignored, as the spec requires (they may be witness
    cosignatures). The note is refused if it is malformed, if any signature by a trusted key fails,
    or if no trusted key signed it.
    """
    try:
        message = note.decode()
        _check_text(message)
    except ValueError:
        raise MalformedNote("not UTF-8 text ending in a newline without control characters") from None
    split = message.rfind("\n\n")
    if split < 0 or split + 2 == len(message):
        raise MalformedNote("no blank line followed by signature lines")
    text, lines = message[: split + 1], message[split + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"more than {MAX_SIGNATURES} signatures")
    trusted = {(v.name, v.key_id): v for v in verifiers}
    seen: set[tuple[str, int]] = set()
    verified: list[Verifier] = []
    for number, line in enumerate(lines, 1):
        name, key_id, signature = _parse_signature_line(line, number)
        if (name, key_id) in seen:
            raise MalformedNote(f"signature line {number} repeats key {name}")
        seen.add((name, key_id))
        verifier = trusted.get((name, key_id))
        if verifier is None:
            continue
        if not verifier.verify(text.encode(), signature):
            raise BadSignature(f"signature by {name} (key id {key_id:08x})")
        verified.append(verifier)
    if not verified:
        raise UnknownSigner("signed by " + ", ".join(sorted({name for name, _ in seen})))
    return VerifiedNote(text, tuple(verified))


def _parse_signature_line(line: str, number: int) -> tuple[str, int, bytes]:
    fields = line.removeprefix(_SIG_PREFIX).split(" ")
    try:
        if not line.startswith(_SIG_PREFIX) or len(fields) != 2:
            raise ValueError("expected '\u2014 <key name> <base64 signature>'")
        name, encoded = fields
        _check_name(name)
        signature = b64decode(encoded)
        if len(signature) < 5:
            raise ValueError("the signature is too short")
    except ValueError as e:
        raise MalformedNote(f"signature line {number}: {e}") from None
    return name, int.from_bytes(signature[:4], "big"), signature[4:]
