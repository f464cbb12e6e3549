from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    SHARED_UP_SUBSCRIPTION,
    BadReceipt,
    Ed25519Signer,
    EnvelopeError,
    PublicKeyRecord,
    Reason,
    TopicKind,
    encode_receipt,
    key_id,
    parse_receipt,
    parse_topic,
    receipt_topic,
    seq_spans,
    state_message,
    state_topic,
    up_topic,
)
from protocol.topics import MAX_RECEIPT_BYTES, MAX_RECEIPT_RANGES


def test_topic_round_trip() -> None:
    topic = parse_topic(up_topic("proj-1", "meter.7"))
    assert (topic.project_id, topic.device_id, topic.kind) == ("proj-1", "meter.7", TopicKind.UP)
    assert parse_topic(state_topic("p", "d")).kind is TopicKind.STATE
    assert SHARED_UP_SUBSCRIPTION == "$share/ingest/mrv/v1/+/+/up"


@pytest.mark.parametrize("topic", ["mrv/v1/p/d", "mrv/v2/p/d/up", "mrv/v1/p/d/down", "mrv/v1/p/+/up",
                                   "mrv/v1//d/up", "mrv/v1/p/d/up/extra", ""])
def test_bad_topics_are_refused(topic: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        parse_topic(topic)
    assert info.value.reason is Reason.BAD_TOPIC


def test_ids_with_mqtt_wildcards_cannot_build_topics() -> None:
    for bad in ("a+b", "a#", "a/b", "", "-x", "x" * 65):
        with pytest.raises(ValueError):
            up_topic("p", bad)


def test_key_id_and_public_key_record_round_trip() -> None:
    signer = Ed25519Signer.generate()
    record = PublicKeyRecord("meter-1", signer.public_key)
    assert record.kid == key_id(signer.public_key) == signer.kid
    assert PublicKeyRecord.from_json(record.to_json()) == record
    assert "seed" not in repr(signer) and signer.seed.hex() not in repr(signer)


def test_public_key_record_rejects_a_wrong_kid() -> None:
    text = PublicKeyRecord("meter-1", Ed25519Signer.generate().public_key).to_json()
    tampered = text.replace('"kid": "', '"kid": "00')
    with pytest.raises(ValueError):
        PublicKeyRecord.from_json(tampered)


def test_state_message_is_compact_json() -> None:
    assert state_message("online", agent_version="0.1", time_ms=5) == (
        b'{"agent_version":"0.1","status":"online","time_ms":5}')


def test_receipt_topic_and_payload_round_trip() -> None:
    assert receipt_topic("proj-1", "meter.7") == "mrv/v1/proj-1/meter.7/receipt"
    assert parse_topic(receipt_topic("p", "d")).kind is TopicKind.RECEIPT
    spans = seq_spans([7, 3, 4, 5, 9, 3, 10])
    assert spans == [(3, 5), (7, 7), (9, 10)]
    payload = encode_receipt(spans)
    assert payload == b'{"v":1,"seqs":[[3,5],[7,7],[9,10]]}'
    assert parse_receipt(payload) == spans
    assert parse_receipt(encode_receipt([(0, 2**63 - 1)])) == [(0, 2**63 - 1)]


@pytest.mark.parametrize("payload", [
    b"", b"\xff\xfe", b"null", b"[]", b"[" * 50_000, b'{"v":1}', b'{"seqs":[[1,2]]}',
    b'{"v":2,"seqs":[[1,2]]}', b'{"v":true,"seqs":[[1,2]]}', b'{"v":1.0,"seqs":[[1,2]]}',
    b'{"v":1,"seqs":[[1,2]],"extra":0}', b'{"v":1,"seqs":[]}', b'{"v":1,"seqs":[[2,1]]}',
    b'{"v":1,"seqs":[[-1,2]]}', b'{"v":1,"seqs":[[0,9223372036854775808]]}', b'{"v":1,"seqs":[[1,2,3]]}',
    b'{"v":1,"seqs":[[1,"2"]]}', b'{"v":1,"seqs":[[1,2.0]]}', b'{"v":1,"seqs":[[true,2]]}',
    b'{"v":1,"seqs":[[5,6],[1,2]]}', b'{"v":1,"seqs":[[1,2],[2,3]]}', b'{"v":1,"seqs":[[1,2],[3,4]]}',
    b'{"v":1,"seqs":{"1":2}}', b'{"v":1,"seqs":[[1,2]]}' + b" " * (MAX_RECEIPT_BYTES + 1),
    encode_receipt([(2 * i, 2 * i) for i in range(MAX_RECEIPT_RANGES)])[:-2] + b',[9999,9999]]}',
])
def test_bad_receipts_are_refused(payload: bytes) -> None:
    with pytest.raises(BadReceipt):
        parse_receipt(payload)


def test_encode_receipt_refuses_what_parse_would() -> None:
    for spans in ([], [(3, 2)], [(1, 2), (3, 4)], [(-1, 0)]):
        with pytest.raises(ValueError):
            encode_receipt(spans)


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_parse_receipt_raises_only_bad_receipt(payload: bytes) -> None:
    try:
        spans = parse_receipt(payload)
    except BadReceipt:
        return
    assert parse_receipt(encode_receipt(spans)) == spans
