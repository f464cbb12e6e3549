"""MQTT topic names: `mrv/v1/{project_id}/{device_id}/up`, `.../state` and `.../receipt`, plus the state
message and the delivery receipt (ingest -> device: these seqs are durably recorded, delete them)."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from protocol.errors import BadTopic
from protocol.ids import check_id, is_valid_id

PREFIX = "mrv/v1"
# N ingest workers share one subscription; the broker spreads messages among them.
SHARED_UP_SUBSCRIPTION = f"$share/ingest/{PREFIX}/+/+/up"
UP_SUBSCRIPTION = f"{PREFIX}/+/+/up"
STATE_SUBSCRIPTION = f"{PREFIX}/+/+/state"


class TopicKind(enum.StrEnum):
    UP = "up"
    STATE = "state"
    RECEIPT = "receipt"


@dataclass(frozen=True)
class Topic:
    project_id: str
    device_id: str
    kind: TopicKind

    def __post_init__(self) -> None:
        check_id(self.project_id, "project id")
        check_id(self.device_id, "device id")

    def __str__(self) -> str:
        return f"{PREFIX}/{self.project_id}/{self.device_id}/{self.kind.value}"


def up_topic(project_id: str, device_id: str) -> str:
    return str(Topic(project_id, device_id, TopicKind.UP))


def state_topic(project_id: str, device_id: str) -> str:
    return str(Topic(project_id, device_id, TopicKind.STATE))


def receipt_topic(project_id: str, device_id: str) -> str:
    return str(Topic(project_id, device_id, TopicKind.RECEIPT))


def parse_topic(topic: str) -> Topic:
    """Split a topic into its parts; raises BadTopic for anything that is not ours."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise BadTopic(f"topic {topic[:200]!r} is not {PREFIX}/PROJECT/DEVICE/KIND")
    _, _, project_id, device_id, kind = parts
    if not (is_valid_id(project_id) and is_valid_id(device_id)):
        raise BadTopic(f"topic {topic[:200]!r} has an invalid project or device id")
    try:
        return Topic(project_id, device_id, TopicKind(kind))
    except ValueError as e:
        raise BadTopic(f"topic {topic[:200]!r}: unknown kind {kind!r}") from e


def state_message(status: str, *, agent_version: str, time_ms: int) -> bytes:
    """The retained birth (`online`) or last-will (`offline`) message of a device."""
    if status not in ("online", "offline"):
        raise ValueError("status is online or offline")
    return json.dumps({"status": status, "agent_version": agent_version, "time_ms": time_ms},
                      sort_keys=True, separators=(",", ":")).encode()


RECEIPT_VERSION = 1
MAX_SEQ = 2**63 - 1
MAX_RECEIPT_RANGES = 1024  # per receipt; ingest splits a longer list over several receipts
MAX_RECEIPT_BYTES = 64 * 1024  # 1024 ranges of two 19-digit seqs fit with room to spare


class BadReceipt(ValueError):
    """A receipt payload that is not exactly what `encode_receipt` writes; the agent ignores it."""


SeqSpan = tuple[int, int]  # inclusive (first, last)


def seq_spans(seqs: Iterable[int]) -> list[SeqSpan]:
    """Sorted, merged inclusive ranges of the given seqs (duplicates allowed)."""
    spans: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if spans and seq == spans[-1][1] + 1:
            spans[-1][1] = seq
        else:
            spans.append([seq, seq])
    return [(first, last) for first, last in spans]


def encode_receipt(spans: Sequence[SeqSpan]) -> bytes:
    """`{"v":1,"seqs":[[first,last],...]}`: ascending, disjoint, non-adjacent inclusive ranges."""
    _check_spans(spans)
    return json.dumps({"v": RECEIPT_VERSION, "seqs": [list(s) for s in spans]}, separators=(",", ":")).encode()


def parse_receipt(payload: bytes) -> list[SeqSpan]:
    """The seq ranges of a receipt; raises BadReceipt for anything `encode_receipt` would not write."""
    if len(payload) > MAX_RECEIPT_BYTES:
        raise BadReceipt(f"receipt of {len(payload)} bytes exceeds {MAX_RECEIPT_BYTES}")
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError; deep nesting recurses
        raise BadReceipt(f"receipt is not JSON: {str(e)[:100]}") from None
    if not isinstance(data, dict) or set(data) != {"v", "seqs"}:
        raise BadReceipt("receipt is not an object with exactly v and seqs")
    if type(data["v"]) is not int or data["v"] != RECEIPT_VERSION:
        raise BadReceipt(f"receipt version {data['v']!r} is not {RECEIPT_VERSION}")
    raw = data["seqs"]
    if not isinstance(raw, list) or not all(
            isinstance(s, list) and len(s) == 2 and all(type(n) is int for n in s) for s in raw):
        raise BadReceipt("seqs is not a list of [first, last] integer pairs")
    spans = [(s[0], s[1]) for s in raw]
    try:
        _check_spans(spans)
    except ValueError as e:
        raise BadReceipt(str(e)) from None
    return spans


def _check_spans(spans: Sequence[SeqSpan]) -> None:
    if not 1 <= len(spans) <= MAX_RECEIPT_RANGES:
        raise ValueError(f"a receipt holds 1 to {MAX_RECEIPT_RANGES} ranges, not {len(spans)}")
    previous = -2
    for first, last in spans:
        if not 0 <= first <= last <= MAX_SEQ:
            raise ValueError(f"range [{first}, {last}] is not 0 <= first <= last <= {MAX_SEQ}")
        if first <= previous + 1:
            raise ValueError(f"range [{first}, {last}] is not after and apart from the one before")
        previous = last
