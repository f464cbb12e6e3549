"""Delivery receipts (pure): what a committed batch tells each device's agent it may delete.

Every decision of a committed batch is final: stored, a duplicate of what is stored, or quarantined
with a reason (resending the same bytes would be decided the same way). So each message whose topic
names a device and whose payload names the same device and a seq is receipted, on that device's
`.../receipt` topic. Messages with no seq to name (unparseable payloads, bad topics, a payload signed
for another device than its topic's) get none: a receipt may only ever speak for the topic's device.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ingest.decide import Decision, Message, Quarantine
from protocol.errors import BadTopic
from protocol.topics import MAX_RECEIPT_RANGES, TopicKind, encode_receipt, parse_topic, receipt_topic, seq_spans


def _claimed(decision: Decision) -> tuple[str | None, int | None]:
    if isinstance(decision, Quarantine):
        return decision.device_id, decision.seq
    return decision.envelope.device_id, decision.envelope.seq


def batch_receipts(messages: Sequence[Message], decisions: Sequence[Decision]) -> list[tuple[str, bytes]]:
    """(receipt topic, payload) for every device with receiptable messages in the committed batch;
    `decisions` line up with `messages`. A device with more than MAX_RECEIPT_RANGES ranges gets several."""
    if len(messages) != len(decisions):
        raise ValueError("one decision per message")
    seqs: defaultdict[str, set[int]] = defaultdict(set)
    for message, decision in zip(messages, decisions, strict=True):
        device_id, seq = _claimed(decision)
        if seq is None:
            continue
        try:
            topic = parse_topic(message.topic)
        except BadTopic:
            continue
        if topic.kind is TopicKind.UP and topic.device_id == device_id:
            seqs[receipt_topic(topic.project_id, topic.device_id)].add(seq)
    receipts = []
    for topic_name, device_seqs in seqs.items():
        spans = seq_spans(device_seqs)
        for at in range(0, len(spans), MAX_RECEIPT_RANGES):
            receipts.append((topic_name, encode_receipt(spans[at:at + MAX_RECEIPT_RANGES])))
    return receipts
