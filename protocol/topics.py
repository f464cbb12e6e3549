"""MQTT topic names: `mrv/v1/{project_id}/{device_id}/up` and `.../state`, plus the state message."""

from __future__ import annotations

import enum
import json
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
