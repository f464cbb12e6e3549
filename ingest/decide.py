"""Every ingest decision, with no I/O: a message in; accept, duplicate or quarantine (with a Reason) out.

Two steps, because they need different state:

1. `screen` needs only the message, its arrival time, a registry view and the policy: topic, strict
   parse, identity (device, project, key), signature, key status and validity, clock. It runs
   anywhere, including a process pool, and returns `Admitted` (built only from a `VerifiedEnvelope`)
   or `Quarantine`.
2. `ChainTracker.decide` needs the devices' chain heads and the stored neighbours of the envelope,
   read under a row lock by the store: duplicate (same seq, same bytes), replay conflict (same seq,
   other bytes), or accept with flags and chain events (gap, chain break, late fill).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from protocol.envelope import GENESIS_PREV, VerifiedEnvelope, parse_envelope, verify_parsed
from protocol.errors import BadTopic, EnvelopeError, Reason
from protocol.topics import TopicKind, parse_topic

_MAX_SEQ = 2**63 - 1


class EnvelopeFlag(enum.IntFlag):
    """Stored beside an accepted envelope (`envelopes.flags`): valid signed data, but look closer."""

    NONE = 0
    CHAIN_BREAK = 1  # `prev` differs from the stored predecessor's hash, or the successor's `prev` from ours
    GAP_BEFORE = 2  # seqs between the device's last stored envelope and this one are missing
    LATE_FILL = 4  # arrived after a higher seq of its device: fills (part of) an earlier gap
    CLOCK_SKEW = 8  # device time and arrival differ by more than the policy's skew


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """An enrolled public key as the decisions see it (times in Unix milliseconds)."""

    kid: bytes
    device_id: str
    public_key: bytes
    valid_from_ms: int
    valid_until_ms: int | None
    status: KeyStatus

    def valid_at(self, time_ms: int) -> bool:
        until = self.valid_until_ms
        return self.valid_from_ms <= time_ms and (until is None or time_ms < until)


@dataclass(frozen=True)
class RegistryView:
    """A snapshot of the device registry; `version` changes whenever the registry does."""

    version: int
    device_projects: Mapping[str, str]  # device id -> project id
    keys: Mapping[bytes, KeyInfo]  # kid -> key


@dataclass(frozen=True, slots=True)
class Policy:
    """Clock tolerances: a device time (or reading time) further than `future_tolerance_ms` ahead of
    arrival is refused; one further than `clock_skew_ms` from arrival either way is flagged."""

    future_tolerance_ms: int = 300_000
    clock_skew_ms: int = 120_000

    def __post_init__(self) -> None:
        if self.future_tolerance_ms < 0 or self.clock_skew_ms < 0:
            raise ValueError("clock tolerances are non-negative")


class Message(NamedTuple):
    """One MQTT message as received: topic, the exact payload bytes, arrival time (Unix ms)."""

    topic: str
    raw: bytes
    arrival_ms: int


@dataclass(frozen=True, slots=True)
class Quarantine:
    """Refused: `reason` is the stable code, `detail` says where; device and seq as claimed, if known."""

    reason: Reason
    detail: str = ""
    device_id: str | None = None
    seq: int | None = None


ReadingRow = tuple[int, int, int | float, int]  # metric, ts_ms, value, quality


class Admitted(NamedTuple):
    """What stays of a VerifiedEnvelope that passed every registry and clock check.

    A tuple of plain values so that it crosses a process boundary cheaply; build it only with `of`.
    """

    device_id: str
    seq: int
    hash: bytes
    prev: bytes
    kid: bytes
    device_time_ms: int
    readings: tuple[ReadingRow, ...]
    flags: int

    @classmethod
    def of(cls, envelope: VerifiedEnvelope, flags: EnvelopeFlag) -> Admitted:
        p = envelope.payload
        readings = tuple((r.metric, r.ts_ms, r.value, r.quality) for r in p.readings)
        return cls(p.device_id, p.seq, envelope.hash, p.prev, envelope.kid, p.device_time_ms, readings,
                   int(flags))


def screen(message: Message, registry: RegistryView, policy: Policy) -> Admitted | Quarantine:
    """Every check that needs no stored envelopes, in an order that names the first real problem."""
    try:
        topic = parse_topic(message.topic)
    except BadTopic as e:
        return Quarantine(Reason.BAD_TOPIC, e.detail)
    if topic.kind is not TopicKind.UP:
        return Quarantine(Reason.BAD_TOPIC, f"envelopes travel on .../up, not .../{topic.kind}",
                          topic.device_id)
    try:
        parsed = parse_envelope(message.raw)
    except EnvelopeError as e:
        return Quarantine(e.reason, e.detail, e.device_id or topic.device_id, e.seq)
    p = parsed.payload
    if p.device_id != topic.device_id:
        detail = f"topic device {topic.device_id!r}, signed device {p.device_id!r}"
        return Quarantine(Reason.TOPIC_MISMATCH, detail, p.device_id, p.seq)
    project = registry.device_projects.get(p.device_id)
    if project is None:
        return Quarantine(Reason.UNKNOWN_DEVICE, "", p.device_id, p.seq)
    if project != topic.project_id:
        return Quarantine(Reason.PROJECT_MISMATCH,
                          f"topic project {topic.project_id!r}, enrolled {project!r}", p.device_id, p.seq)
    key = registry.keys.get(parsed.kid)
    if key is None:
        return Quarantine(Reason.UNKNOWN_KEY, f"kid {parsed.kid.hex()}", p.device_id, p.seq)
    if key.device_id != p.device_id:
        return Quarantine(Reason.KEY_WRONG_DEVICE, f"kid {parsed.kid.hex()} belongs to {key.device_id!r}",
                          p.device_id, p.seq)
    try:
        verified = verify_parsed(parsed, key.public_key)
    except EnvelopeError as e:
        return Quarantine(e.reason, e.detail, p.device_id, p.seq)
    return _check_times(verified, key, message.arrival_ms, policy)


def _check_times(verified: VerifiedEnvelope, key: KeyInfo, arrival_ms: int,
                 policy: Policy) -> Admitted | Quarantine:
    p = verified.payload
    if key.status is KeyStatus.REVOKED:
        return Quarantine(Reason.KEY_REVOKED, f"kid {key.kid.hex()}", p.device_id, p.seq)
    for what, when in (("device time", p.device_time_ms), ("arrival", arrival_ms)):
        if not key.valid_at(when):
            return Quarantine(Reason.KEY_NOT_VALID_AT_TIME,
                              f"kid {key.kid.hex()} not valid at {what} {when} ms", p.device_id, p.seq)
    latest = max(p.device_time_ms, max(r.ts_ms for r in p.readings))
    if latest > arrival_ms + policy.future_tolerance_ms:
        return Quarantine(Reason.FUTURE_TIMESTAMP,
                          f"{(latest - arrival_ms) / 1000:.1f} s ahead of arrival, tolerance "
                          f"{policy.future_tolerance_ms / 1000:.1f} s", p.device_id, p.seq)
    skewed = abs(p.device_time_ms - arrival_ms) > policy.clock_skew_ms
    return Admitted.of(verified, EnvelopeFlag.CLOCK_SKEW if skewed else EnvelopeFlag.NONE)


class ChainEventKind(enum.StrEnum):
    GAP = "gap"
    CHAIN_BREAK = "chain_break"
    LATE_FILL = "late_fill"


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """Something about a device's hash chain worth an auditor's attention (`chain_events` row)."""

    kind: ChainEventKind
    device_id: str
    seq_from: int
    seq_to: int
    detail: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """A device's stored chain tip: the highest seq stored and its envelope hash (None before any)."""

    last_seq: int | None = None
    last_hash: bytes | None = None


@dataclass(frozen=True, slots=True)
class StoredLink:
    """The chain fields of one stored envelope."""

    hash: bytes
    prev: bytes


@dataclass(frozen=True, slots=True)
class Accept:
    envelope: Admitted
    flags: int
    events: tuple[ChainEvent, ...]


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Exactly these bytes are already stored: acknowledge, store nothing, count once as duplicate."""

    envelope: Admitted


Decision = Accept | Duplicate | Quarantine


def links_needed(envelopes: Iterable[Admitted], heads: Mapping[str, ChainHead]) -> set[tuple[str, int]]:
    """The stored envelopes `ChainTracker` must see: own seq and neighbours of anything at or below a
    device's head. Appends above the head need none (the head's hash is in `heads`)."""
    needed: set[tuple[str, int]] = set()
    for e in envelopes:
        last = heads.get(e.device_id, ChainHead()).last_seq
        if last is not None and e.seq <= last:
            needed.update((e.device_id, s) for s in (e.seq - 1, e.seq, e.seq + 1) if 0 <= s <= last)
    return needed


class ChainTracker:
    """Decides envelopes in arrival order against the stored chain state, and remembers each accepted
    one so that later envelopes of the same batch see it."""

    def __init__(self, heads: Mapping[str, ChainHead], stored: Mapping[tuple[str, int], StoredLink]) -> None:
        self._initial = dict(heads)
        self._heads = dict(heads)
        self._links = dict(stored)

    def decide(self, e: Admitted) -> Decision:
        own = self._links.get((e.device_id, e.seq))
        if own is not None:
            if own.hash == e.hash:
                return Duplicate(e)
            return Quarantine(Reason.REPLAY_CONFLICT, f"stored hash {own.hash.hex()[:16]}, "
                              f"offered {e.hash.hex()[:16]}", e.device_id, e.seq)
        head = self._heads.get(e.device_id, ChainHead())
        flags = EnvelopeFlag(e.flags)
        events: list[ChainEvent] = []

        def event(kind: ChainEventKind, lo: int, hi: int, detail: str, flag: EnvelopeFlag) -> None:
            nonlocal flags
            events.append(ChainEvent(kind, e.device_id, lo, hi, detail))
            flags |= flag

        if head.last_seq is None:
            if e.prev != GENESIS_PREV and e.seq > 0:
                event(ChainEventKind.GAP, 0, e.seq - 1, "the first envelope seen does not start the chain",
                      EnvelopeFlag.GAP_BEFORE)
            elif e.prev != GENESIS_PREV:
                event(ChainEventKind.CHAIN_BREAK, 0, 0, "seq 0 does not link to the genesis value",
                      EnvelopeFlag.CHAIN_BREAK)
        elif e.seq > head.last_seq:
            if e.seq > head.last_seq + 1:
                event(ChainEventKind.GAP, head.last_seq + 1, e.seq - 1,
                      f"{e.seq - head.last_seq - 1} envelope(s) missing", EnvelopeFlag.GAP_BEFORE)
            elif e.prev != head.last_hash:
                event(ChainEventKind.CHAIN_BREAK, head.last_seq, e.seq, "prev differs from the stored hash",
                      EnvelopeFlag.CHAIN_BREAK)
        else:
            event(ChainEventKind.LATE_FILL, e.seq, e.seq, f"arrived after seq {head.last_seq}",
                  EnvelopeFlag.LATE_FILL)
            below = self._hash_at(e.device_id, e.seq - 1)
            if below is not None and e.prev != below:
                event(ChainEventKind.CHAIN_BREAK, e.seq - 1, e.seq, "prev differs from the stored hash",
                      EnvelopeFlag.CHAIN_BREAK)
            above = self._links.get((e.device_id, e.seq + 1)) if e.seq < _MAX_SEQ else None
            if above is not None and above.prev != e.hash:
                event(ChainEventKind.CHAIN_BREAK, e.seq, e.seq + 1, "the stored successor's prev differs",
                      EnvelopeFlag.CHAIN_BREAK)
        self._links[(e.device_id, e.seq)] = StoredLink(e.hash, e.prev)
        if head.last_seq is None or e.seq > head.last_seq:
            self._heads[e.device_id] = ChainHead(e.seq, e.hash)
        return Accept(e, int(flags), tuple(events))

    def _hash_at(self, device_id: str, seq: int) -> bytes | None:
        link = self._links.get((device_id, seq))
        if link is not None:
            return link.hash
        initial = self._initial.get(device_id, ChainHead())
        return initial.last_hash if initial.last_seq == seq else None

    def changed_heads(self) -> dict[str, ChainHead]:
        """Heads that moved since the tracker was built: what the store writes back."""
        return {d: h for d, h in self._heads.items() if self._initial.get(d) != h}
