"""The signed envelope: COSE_Sign1 (RFC 9052, tag 18, EdDSA) over a deterministic-CBOR payload.

Wire layout::

    18([ protected = bstr .cbor {1: -8, 4: kid(16 bytes)},   # alg EdDSA, key id
         unprotected = {},
         payload = bstr .cbor {1: version, 2: device_id, 3: seq, 4: prev(32 bytes),
                               5: device_time_ms, 6: [[metric, ts_ms, value, quality], ...]},
         signature = bstr(64) ])

The signature covers the exact bytes that travel and the server stores those bytes verbatim, so
decoding is strict: anything that is not exactly this shape, deterministically encoded, is refused
with a typed error. `parse_envelope` checks structure only; `verify_envelope` also checks the
signature and returns the only type downstream code accepts, `VerifiedEnvelope`.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from typing import Any, cast

import cbor2

from protocol.errors import (
    BadHeader,
    BadSignature,
    EnvelopeTooLarge,
    InvalidPayload,
    KeyMismatch,
    MalformedCbor,
    NonCanonicalEncoding,
    NotCoseSign1,
    TrailingBytes,
    UnknownMetric,
    UnsupportedAlgorithm,
    UnsupportedVersion,
)
from protocol.ids import is_valid_id
from protocol.keys import KEY_ID_BYTES, SIGNATURE_BYTES, Signer, key_id, verify_signature
from protocol.metrics import METRICS, QUALITY_MASK, Metric, MetricKind

FORMAT_VERSION = 1
MAX_ENVELOPE_BYTES = 64 * 1024
MAX_READINGS = 1024
HASH_BYTES = 32
GENESIS_PREV = bytes(HASH_BYTES)  # `prev` of a device's first envelope
COSE_SIGN1_TAG = 18
ALG_EDDSA = -8
_HDR_ALG = 1
_HDR_KID = 4
_MAX_U63 = 2**63 - 1

_K_VERSION, _K_DEVICE, _K_SEQ, _K_PREV, _K_TIME, _K_READINGS = 1, 2, 3, 4, 5, 6
_PAYLOAD_KEYS = frozenset({_K_VERSION, _K_DEVICE, _K_SEQ, _K_PREV, _K_TIME, _K_READINGS})


@dataclass(frozen=True, slots=True)
class Reading:
    metric: int  # a protocol.metrics.Metric code
    ts_ms: int  # Unix time in milliseconds, UTC
    value: int | float  # cumulative registers are integers
    quality: int = 0  # protocol.metrics.Quality bit mask


@dataclass(frozen=True, slots=True)
class Payload:
    device_id: str
    seq: int
    prev: bytes
    device_time_ms: int
    readings: tuple[Reading, ...]
    version: int = FORMAT_VERSION


@dataclass(frozen=True, slots=True)
class ParsedEnvelope:
    """Structurally valid, signature NOT checked. Never store or count one of these."""

    raw: bytes
    protected: bytes
    kid: bytes
    payload_bytes: bytes
    payload: Payload
    signature: bytes

    @property
    def to_be_signed(self) -> bytes:
        return _sig_structure(self.protected, self.payload_bytes)


@dataclass(frozen=True, slots=True)
class VerifiedEnvelope:
    """An envelope whose signature verified against the key with id `kid`."""

    raw: bytes
    hash: bytes
    kid: bytes
    payload: Payload

    @property
    def device_id(self) -> str:
        return self.payload.device_id

    @property
    def seq(self) -> int:
        return self.payload.seq


def envelope_hash(raw: bytes) -> bytes:
    """SHA-256 of the envelope bytes: the next envelope's `prev` and its id in the database.

    (The Merkle log's leaf is over the envelope bytes themselves: SHA-256(0x00 || raw), RFC 9162.)
    """
    return hashlib.sha256(raw).digest()


def _encode(obj: Any) -> bytes:
    # canonical=True: shortest integers and floats, sorted map keys, definite lengths (RFC 8949 §4.2).
    return cbor2.dumps(obj, canonical=True)


def _sig_structure(protected: bytes, payload_bytes: bytes) -> bytes:
    return _encode(["Signature1", protected, b"", payload_bytes])


def encode_payload(payload: Payload) -> bytes:
    """Deterministic CBOR of a payload; validates it first, so nothing invalid is ever signed."""
    p = payload
    _check_header(p.version, p.device_id, p.seq, p.prev, p.device_time_ms, p.readings)
    rows = [[int(r.metric), r.ts_ms, r.value, r.quality] for r in p.readings]
    for i, row in enumerate(rows):
        _check_reading(row, i)
    return _encode({_K_VERSION: p.version, _K_DEVICE: p.device_id, _K_SEQ: p.seq, _K_PREV: p.prev,
                    _K_TIME: p.device_time_ms, _K_READINGS: rows})


def sign_envelope(payload: Payload, signer: Signer) -> bytes:
    """Encode and sign: returns the envelope bytes that travel and are stored."""
    protected = _encode({_HDR_ALG: ALG_EDDSA, _HDR_KID: signer.kid})
    payload_bytes = encode_payload(payload)
    signature = signer.sign(_sig_structure(protected, payload_bytes))
    return _encode(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload_bytes, signature]))


def _strict_loads(data: bytes) -> Any:
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except Exception as e:  # cbor2 raises many types for bad input; convert once, here
        raise MalformedCbor(f"{type(e).__name__}: {str(e)[:200]}") from None
    if item is cbor2.break_marker:  # type: ignore[attr-defined]  # a lone 0xff "break" code is not a data item
        raise MalformedCbor("a break code where a data item was expected")
    if stream.tell() != len(data):
        raise TrailingBytes(f"{len(data) - stream.tell()} bytes after the item")
    return item


def _is_uint(value: object, limit: int = _MAX_U63) -> bool:
    return type(value) is int and 0 <= value <= limit


def _check_reading(item: object, index: int) -> None:
    if not (type(item) is list and len(item) == 4):
        raise InvalidPayload(f"reading {index} is not [metric, ts_ms, value, quality]")
    metric, ts_ms, value, quality = item
    if not _is_uint(metric, 0xFFFF):
        raise InvalidPayload(f"reading {index}: metric must be an unsigned integer")
    if metric not in METRICS:
        raise UnknownMetric(f"reading {index}: metric code {metric}")
    if not _is_uint(ts_ms):
        raise InvalidPayload(f"reading {index}: ts_ms must be an unsigned integer")
    if not _is_uint(quality) or quality & ~QUALITY_MASK:
        raise InvalidPayload(f"reading {index}: unknown quality bits")
    info = METRICS[Metric(metric)]
    if info.kind is MetricKind.CUMULATIVE:
        if type(value) is not int:
            raise InvalidPayload(f"reading {index}: {info.name} is a register and must be an integer")
    elif type(value) not in (int, float) or not math.isfinite(value):
        raise InvalidPayload(f"reading {index}: {info.name} must be a finite number")
    if not info.min_value <= value <= info.max_value:
        raise InvalidPayload(f"reading {index}: {info.name} {value} outside [{info.min_value}, {info.max_value}]")


def _check_header(version: object, device_id: object, seq: object, prev: object, device_time: object,
                  readings: object) -> None:
    if version != FORMAT_VERSION or type(version) is not int:
        raise UnsupportedVersion(f"version {version!r}")
    if not is_valid_id(device_id):
        raise InvalidPayload("device_id is not a valid id")
    device_id = cast(str, device_id)
    if not _is_uint(seq):
        raise InvalidPayload("seq must be an unsigned integer", device_id=device_id)
    seq = cast(int, seq)
    if type(prev) is not bytes or len(prev) != HASH_BYTES:
        raise InvalidPayload("prev must be 32 bytes", device_id=device_id, seq=seq)
    if not _is_uint(device_time):
        raise InvalidPayload("device_time_ms must be an unsigned integer", device_id=device_id, seq=seq)
    if type(readings) not in (list, tuple) or not 1 <= len(readings) <= MAX_READINGS:  # type: ignore[arg-type]
        raise InvalidPayload(f"readings must be a list of 1-{MAX_READINGS}", device_id=device_id, seq=seq)


def decode_payload(payload_bytes: bytes) -> Payload:
    """Strictly decode payload bytes; raises a typed EnvelopeError naming what is wrong."""
    data = _strict_loads(payload_bytes)
    if type(data) is not dict or set(data) != _PAYLOAD_KEYS:
        raise InvalidPayload("the payload must be a map with exactly the keys 1-6")
    device_id, seq, items = data[_K_DEVICE], data[_K_SEQ], data[_K_READINGS]
    _check_header(data[_K_VERSION], device_id, seq, data[_K_PREV], data[_K_TIME], items)
    if type(items) is not list:
        raise InvalidPayload("readings must be an array", device_id=device_id, seq=seq)
    try:
        for i, item in enumerate(items):
            _check_reading(item, i)
    except InvalidPayload as e:
        e.device_id, e.seq = device_id, seq
        raise
    if _encode(data) != payload_bytes:
        raise NonCanonicalEncoding("re-encoding the payload gives different bytes",
                                   device_id=device_id, seq=seq)
    readings = tuple(Reading(m, t, v, q) for m, t, v, q in items)
    return Payload(device_id, seq, data[_K_PREV], data[_K_TIME], readings, data[_K_VERSION])


def parse_envelope(raw: bytes) -> ParsedEnvelope:
    """Check size, COSE structure, headers and payload; does not check the signature."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise EnvelopeTooLarge(f"{len(raw)} bytes > {MAX_ENVELOPE_BYTES}")
    item = _strict_loads(raw)
    if not (isinstance(item, cbor2.CBORTag) and item.tag == COSE_SIGN1_TAG
            and type(item.value) is list and len(item.value) == 4):
        raise NotCoseSign1("expected tag 18 around [protected, unprotected, payload, signature]")
    protected, unprotected, payload_bytes, signature = item.value
    if type(protected) is not bytes or type(unprotected) is not dict or unprotected:
        raise BadHeader("protected must be a byte string and unprotected an empty map")
    if type(payload_bytes) is not bytes:
        raise InvalidPayload("the payload must be embedded as a byte string")
    if type(signature) is not bytes or len(signature) != SIGNATURE_BYTES:
        raise BadSignature(f"the signature must be {SIGNATURE_BYTES} bytes")
    header = _strict_loads(protected)
    if type(header) is not dict or set(header) != {_HDR_ALG, _HDR_KID}:
        raise BadHeader("the protected header must hold exactly alg (1) and kid (4)")
    if header[_HDR_ALG] != ALG_EDDSA:
        raise UnsupportedAlgorithm(f"alg {header[_HDR_ALG]!r}")
    kid = header[_HDR_KID]
    if type(kid) is not bytes or len(kid) != KEY_ID_BYTES:
        raise BadHeader(f"kid must be {KEY_ID_BYTES} bytes")
    payload = decode_payload(payload_bytes)
    return ParsedEnvelope(raw, protected, kid, payload_bytes, payload, signature)


def verify_parsed(parsed: ParsedEnvelope, public_key: bytes) -> VerifiedEnvelope:
    """Check the signature of an already parsed envelope against `public_key`."""
    p = parsed.payload
    if key_id(public_key) != parsed.kid:
        raise KeyMismatch(f"kid {parsed.kid.hex()}", device_id=p.device_id, seq=p.seq)
    if not verify_signature(public_key, parsed.to_be_signed, parsed.signature):
        raise BadSignature(f"kid {parsed.kid.hex()}", device_id=p.device_id, seq=p.seq)
    return VerifiedEnvelope(parsed.raw, envelope_hash(parsed.raw), parsed.kid, p)


def verify_envelope(raw: bytes, public_key: bytes) -> VerifiedEnvelope:
    """Parse strictly and verify the signature: the one way to obtain a VerifiedEnvelope."""
    return verify_parsed(parse_envelope(raw), public_key)
