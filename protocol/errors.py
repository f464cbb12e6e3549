"""Why an envelope was refused: one stable reason code per failure, shared by edge, server and verifier.

The codes are what the quarantine table stores and what the verifier prints, so they never change
meaning. Errors about bad external data live here; misuse by a caller stays `ValueError`.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    # Decoding and structure (protocol)
    TOO_LARGE = "too_large"
    MALFORMED_CBOR = "malformed_cbor"
    TRAILING_BYTES = "trailing_bytes"
    NOT_COSE_SIGN1 = "not_cose_sign1"
    BAD_HEADER = "bad_header"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    UNSUPPORTED_VERSION = "unsupported_version"
    INVALID_PAYLOAD = "invalid_payload"
    UNKNOWN_METRIC = "unknown_metric"
    NON_CANONICAL = "non_canonical"
    BAD_SIGNATURE = "bad_signature"
    KEY_MISMATCH = "key_mismatch"
    # Registry and transport checks (ingest)
    BAD_TOPIC = "bad_topic"
    TOPIC_MISMATCH = "topic_mismatch"
    UNKNOWN_KEY = "unknown_key"
    KEY_WRONG_DEVICE = "key_wrong_device"
    UNKNOWN_DEVICE = "unknown_device"
    PROJECT_MISMATCH = "project_mismatch"
    KEY_REVOKED = "key_revoked"
    KEY_NOT_VALID_AT_TIME = "key_not_valid_at_time"
    REPLAY_CONFLICT = "replay_conflict"
    FUTURE_TIMESTAMP = "future_timestamp"


_MESSAGES: dict[Reason, str] = {
    Reason.TOO_LARGE: "the envelope exceeds the size limit",
    Reason.MALFORMED_CBOR: "the bytes are not well-formed CBOR",
    Reason.TRAILING_BYTES: "bytes follow the end of the CBOR item",
    Reason.NOT_COSE_SIGN1: "not a tagged COSE_Sign1 structure",
    Reason.BAD_HEADER: "the COSE headers are malformed",
    Reason.UNSUPPORTED_ALGORITHM: "the signature algorithm is not EdDSA (Ed25519)",
    Reason.UNSUPPORTED_VERSION: "the payload format version is not supported",
    Reason.INVALID_PAYLOAD: "the payload does not match the envelope schema",
    Reason.UNKNOWN_METRIC: "a reading names a metric code that is not in the registry",
    Reason.NON_CANONICAL: "the payload is not deterministically encoded CBOR",
    Reason.BAD_SIGNATURE: "the signature does not verify",
    Reason.KEY_MISMATCH: "the key offered does not match the envelope's key id",
    Reason.BAD_TOPIC: "the MQTT topic is not a valid envelope topic",
    Reason.TOPIC_MISMATCH: "the topic's device id differs from the signed device id",
    Reason.UNKNOWN_KEY: "no enrolled key has this key id",
    Reason.KEY_WRONG_DEVICE: "the signing key is enrolled to a different device",
    Reason.UNKNOWN_DEVICE: "the device is not enrolled",
    Reason.PROJECT_MISMATCH: "the topic's project id differs from the device's enrolled project",
    Reason.KEY_REVOKED: "the signing key has been revoked",
    Reason.KEY_NOT_VALID_AT_TIME: "the signing key was not valid at the envelope's device time or arrival",
    Reason.REPLAY_CONFLICT: "a different envelope with the same device and seq is already stored",
    Reason.FUTURE_TIMESTAMP: "the device time lies too far in the future",
}


def describe(reason: Reason) -> str:
    """One line a plant engineer or auditor understands."""
    return _MESSAGES[reason]


class EnvelopeError(Exception):
    """Bad envelope data received from outside. `reason` is the stable code; `detail` says where."""

    reason: Reason = Reason.INVALID_PAYLOAD

    def __init__(self, detail: str = "", *, device_id: str | None = None, seq: int | None = None) -> None:
        self.detail = detail
        self.device_id = device_id
        self.seq = seq
        super().__init__(f"{self.reason}: {describe(self.reason)}" + (f" ({detail})" if detail else ""))


class EnvelopeTooLarge(EnvelopeError):
    reason = Reason.TOO_LARGE


class MalformedCbor(EnvelopeError):
    reason = Reason.MALFORMED_CBOR


class TrailingBytes(EnvelopeError):
    reason = Reason.TRAILING_BYTES


class NotCoseSign1(EnvelopeError):
    reason = Reason.NOT_COSE_SIGN1


class BadHeader(EnvelopeError):
    reason = Reason.BAD_HEADER


class UnsupportedAlgorithm(EnvelopeError):
    reason = Reason.UNSUPPORTED_ALGORITHM


class UnsupportedVersion(EnvelopeError):
    reason = Reason.UNSUPPORTED_VERSION


class InvalidPayload(EnvelopeError):
    reason = Reason.INVALID_PAYLOAD


class UnknownMetric(EnvelopeError):
    reason = Reason.UNKNOWN_METRIC


class NonCanonicalEncoding(EnvelopeError):
    reason = Reason.NON_CANONICAL


class BadSignature(EnvelopeError):
    reason = Reason.BAD_SIGNATURE


class KeyMismatch(EnvelopeError):
    reason = Reason.KEY_MISMATCH


class BadTopic(EnvelopeError):
    reason = Reason.BAD_TOPIC
