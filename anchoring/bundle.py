"""Evidence bundles: one JSON document that lets anyone check envelopes offline. Pure encode/decode.

    {"format": "mrv-evidence-bundle", "version": 2,
     "log": {"origin": ..., "vkey": <C2SP verifier key>},
     "checkpoints": [{"note": <signed checkpoint note>, "receipts": [<AnchorReceipt JSON>...]}...],
     "consistency": [{"from": size1, "to": size2, "proof": [<base64 hash>...]}...],
     "keys": [{"device_id", "kid" (hex), "public_key" (base64), "valid_from", "valid_until",
               "revoked_at" (ISO 8601 or null)}...],
     "envelopes": [{"device_id", "seq" (labels only: the signed payload decides), "raw" (base64),
                    "received_at" (ISO 8601: when ingest received it), "leaf_index", "checkpoint_size",
                    "proof": [<base64 hash>...]}...]}

Every time carries its UTC offset; a time without one is refused. Version 2 added "received_at"
(the arrival time, which the signing key must also have been valid at); version 1 is refused.

Checkpoints are listed by increasing size and each consistency proof links two of them. Nothing
here is trusted by being in the bundle: `anchoring.verifier` checks every item. A bundle may hold a
single envelope (selective disclosure).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from anchoring.encoding import b64decode, b64encode
from anchoring.errors import MalformedBundle, ReceiptInvalid
from anchoring.ledger import AnchorReceipt

FORMAT: Final = "mrv-evidence-bundle"
VERSION: Final = 2


@dataclass(frozen=True)
class DeviceKey:
    """A device's public key and when it was valid: [valid_from, valid_until), and before revoked_at."""

    device_id: str
    kid: bytes
    public_key: bytes
    valid_from: datetime
    valid_until: datetime | None = None
    revoked_at: datetime | None = None

    def valid_at(self, moment: datetime) -> bool:
        return (self.valid_from <= moment and (self.valid_until is None or moment < self.valid_until)
                and (self.revoked_at is None or moment < self.revoked_at))


@dataclass(frozen=True)
class BundleCheckpoint:
    note: bytes
    receipts: tuple[AnchorReceipt, ...] = ()


@dataclass(frozen=True)
class ConsistencyLink:
    size1: int
    size2: int
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class BundleEnvelope:
    """An envelope, its inclusion proof, and `received_at`: when ingest received it (not signed; the
    signing key must have been valid both then and at the signed device time)."""

    device_id: str
    seq: int
    raw: bytes
    leaf_index: int
    checkpoint_size: int
    proof: tuple[bytes, ...]
    received_at: datetime

    @property
    def name(self) -> str:
        """How the verifier names this envelope: by its (unverified) labels and its leaf."""
        return f"envelope {self.device_id}/{self.seq} (leaf {self.leaf_index})"


@dataclass(frozen=True)
class Bundle:
    origin: str
    vkey: str
    checkpoints: tuple[BundleCheckpoint, ...]
    consistency: tuple[ConsistencyLink, ...]
    keys: tuple[DeviceKey, ...]
    envelopes: tuple[BundleEnvelope, ...]

    def encode(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces), UTF-8."""
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "log": {"origin": self.origin, "vkey": self.vkey},
            "checkpoints": [{"note": c.note.decode(), "receipts": [r.to_json() for r in c.receipts]}
                            for c in self.checkpoints],
            "consistency": [{"from": c.size1, "to": c.size2, "proof": [b64encode(h) for h in c.proof]}
                            for c in self.consistency],
            "keys": [{"device_id": k.device_id, "kid": k.kid.hex(), "public_key": b64encode(k.public_key),
                      "valid_from": k.valid_from.isoformat(), "valid_until": _time_text(k.valid_until),
                      "revoked_at": _time_text(k.revoked_at)} for k in self.keys],
            "envelopes": [{"device_id": e.device_id, "seq": e.seq, "raw": b64encode(e.raw),
                           "received_at": e.received_at.isoformat(), "leaf_index": e.leaf_index,
                           "checkpoint_size": e.checkpoint_size,
                           "proof": [b64encode(h) for h in e.proof]} for e in self.envelopes],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> Bundle:
        """Parse `encode` output; `MalformedBundle` naming the part that is wrong."""
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise MalformedBundle(f"not JSON: {e}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise MalformedBundle(f"not a {FORMAT} document")
        if doc.get("version") != VERSION:
            raise MalformedBundle(f"version {doc.get('version')!r} is not supported (expected {VERSION})")
        where = "log"
        try:
            log = doc["log"]
            origin, vkey = _str(log["origin"]), _str(log["vkey"])
            where = "checkpoints"
            checkpoints = tuple(BundleCheckpoint(_str(c["note"]).encode(),
                                                 tuple(AnchorReceipt.from_json(r) for r in _list(c["receipts"])))
                                for c in _list(doc["checkpoints"]))
            where = "consistency"
            consistency = tuple(ConsistencyLink(_int(c["from"]), _int(c["to"]), _hashes(c["proof"]))
                                for c in _list(doc["consistency"]))
            where = "keys"
            keys = tuple(DeviceKey(_str(k["device_id"]), bytes.fromhex(_str(k["kid"])),
                                   b64decode(_str(k["public_key"])), _aware(k["valid_from"]),
                                   _time(k["valid_until"]), _time(k["revoked_at"])) for k in _list(doc["keys"]))
            where = "envelopes"
            envelopes = tuple(BundleEnvelope(_str(e["device_id"]), _int(e["seq"]), b64decode(_str(e["raw"])),
                                             _int(e["leaf_index"]), _int(e["checkpoint_size"]), _hashes(e["proof"]),
                                             _aware(e["received_at"]))
                              for e in _list(doc["envelopes"]))
        except (KeyError, TypeError, ValueError, ReceiptInvalid) as e:
            raise MalformedBundle(f"{where}: {e.__class__.__name__} {e}") from None
        return cls(origin, vkey, checkpoints, consistency, keys, envelopes)


def _time_text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _time(value: Any) -> datetime | None:
    return None if value is None else _aware(value)


def _aware(value: Any) -> datetime:
    """An ISO 8601 time with its UTC offset (a naive time cannot be compared with the others)."""
    moment = datetime.fromisoformat(_str(value))
    if moment.utcoffset() is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return moment


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _hashes(value: Any) -> tuple[bytes, ...]:
    return tuple(b64decode(_str(h)) for h in _list(value))
