"""The wire contract shared by the edge agent, the server and the offline verifier. Pure: no I/O."""

from protocol.envelope import (
    FORMAT_VERSION,
    GENESIS_PREV,
    MAX_ENVELOPE_BYTES,
    MAX_READINGS,
    ParsedEnvelope,
    Payload,
    Reading,
    VerifiedEnvelope,
    decode_payload,
    encode_payload,
    envelope_hash,
    parse_envelope,
    sign_envelope,
    verify_envelope,
    verify_parsed,
)
from protocol.errors import EnvelopeError, Reason, describe
from protocol.ids import check_id, is_valid_id
from protocol.keys import Ed25519Signer, PublicKeyRecord, Signer, key_id, verify_signature
from protocol.metrics import METRICS, METRICS_BY_NAME, Metric, MetricInfo, MetricKind, Quality, metric_info
from protocol.topics import (
    SHARED_UP_SUBSCRIPTION,
    STATE_SUBSCRIPTION,
    UP_SUBSCRIPTION,
    BadReceipt,
    Topic,
    TopicKind,
    encode_receipt,
    parse_receipt,
    parse_topic,
    receipt_topic,
    seq_spans,
    state_message,
    state_topic,
    up_topic,
)

__all__ = [
    "FORMAT_VERSION", "GENESIS_PREV", "MAX_ENVELOPE_BYTES", "MAX_READINGS", "METRICS", "METRICS_BY_NAME",
    "SHARED_UP_SUBSCRIPTION", "STATE_SUBSCRIPTION", "UP_SUBSCRIPTION", "BadReceipt", "Ed25519Signer",
    "EnvelopeError", "Metric", "MetricInfo", "MetricKind", "ParsedEnvelope", "Payload", "PublicKeyRecord",
    "Quality", "Reading", "Reason", "Signer", "Topic", "TopicKind", "VerifiedEnvelope", "check_id",
    "decode_payload", "describe", "encode_payload", "encode_receipt", "envelope_hash", "is_valid_id",
    "key_id", "metric_info", "parse_envelope", "parse_receipt", "parse_topic", "receipt_topic", "seq_spans",
    "sign_envelope", "state_message", "state_topic", "up_topic", "verify_envelope", "verify_parsed",
    "verify_signature",
]
