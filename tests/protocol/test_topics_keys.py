from __future__ import annotations

import pytest

from protocol import (
    SHARED_UP_SUBSCRIPTION,
    Ed25519Signer,
    EnvelopeError,
    PublicKeyRecord,
    Reason,
    TopicKind,
    key_id,
    parse_topic,
    state_message,
    state_topic,
    up_topic,
)


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
