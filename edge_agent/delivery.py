"""Delivery of one device's envelopes from the outbox to ingest, as data (sans-I/O).

An envelope read from the outbox enters the device's `DeliveryWindow` QUEUED, becomes SENT when
published, ACKED on the broker's PUBACK, and is then handed back to be marked *published* in the
outbox, where it stays until ingest's receipt (sent after its commit) deletes it. A lost connection
returns every SENT envelope to QUEUED, to be published again in seq order on the next connection:
the same bytes under the same seq, so a duplicate is always an exact copy.

A broker can acknowledge a message and still lose it (a crash before its snapshot, a forgotten shared
subscription). `ResendSchedule` holds the rule that recovers it: a later receipt proves an earlier
loss. An envelope published at least `grace_ms` ago, still unreceipted while a later seq of its device
has been receipted, goes back into the window. While ingest is away no receipts arrive and nothing is
resent.
"""

from __future__ import annotations

import collections
import enum
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass


class EntryState(enum.Enum):
    QUEUED = "queued"  # in the window, not in flight on the current connection
    SENT = "sent"  # published on the current connection, waiting for PUBACK
    ACKED = "acked"  # the broker has it; mark it published in the outbox (kept until receipted)


class Event(enum.Enum):
    PUBLISH = "publish"
    PUBACK = "puback"
    CONNECTION_LOST = "connection_lost"


TRANSITIONS: dict[tuple[EntryState, Event], EntryState] = {
    (EntryState.QUEUED, Event.PUBLISH): EntryState.SENT,
    (EntryState.SENT, Event.PUBACK): EntryState.ACKED,
    (EntryState.SENT, Event.CONNECTION_LOST): EntryState.QUEUED,
    (EntryState.QUEUED, Event.CONNECTION_LOST): EntryState.QUEUED,
    (EntryState.ACKED, Event.CONNECTION_LOST): EntryState.ACKED,  # acknowledged is final
}


@dataclass(slots=True)
class Entry:
    seq: int
    envelope: bytes
    state: EntryState = EntryState.QUEUED
    mid: int | None = None  # MQTT packet id while SENT


class DeliveryWindow:
    """At most `capacity` envelopes of one device between the outbox and the broker's PUBACK."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the window needs room for at least one envelope")
        self.capacity = capacity
        self.read_after = -1  # highest seq loaded: the next outbox read starts after it
        self._entries: dict[int, Entry] = {}
        self._by_mid: dict[int, int] = {}
        self._to_send: collections.deque[int] = collections.deque()
        self._acked: list[int] = []

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def room(self) -> int:
        return self.capacity - len(self._entries)

    def state(self, seq: int) -> EntryState | None:
        entry = self._entries.get(seq)
        return None if entry is None else entry.state

    def _apply(self, entry: Entry, event: Event) -> None:
        try:
            entry.state = TRANSITIONS[entry.state, event]
        except KeyError:
            raise ValueError(f"seq {entry.seq}: no transition from {entry.state.value} "
                             f"on {event.value}") from None

    def load(self, rows: Iterable[tuple[int, bytes]]) -> None:
        """Add (seq, envelope) rows read from the outbox, ascending and after `read_after`."""
        for seq, envelope in rows:
            if seq <= self.read_after:
                raise ValueError(f"seq {seq} loaded out of order (after {self.read_after})")
            if len(self._entries) >= self.capacity:
                raise ValueError("the window is full")
            self._entries[seq] = Entry(seq, envelope)
            self._to_send.append(seq)
            self.read_after = seq

    def resend(self, rows: Iterable[tuple[int, bytes]]) -> int:
        """Add published-but-unreceipted (seq, envelope) rows to publish again, as far as there is
        room; seqs already in the window are skipped. Returns how many were added."""
        added = 0
        for seq, envelope in rows:
            if len(self._entries) >= self.capacity:
                break
            if seq in self._entries:
                continue
            self._entries[seq] = Entry(seq, envelope)
            self._to_send.append(seq)
            added += 1
        return added

    def to_send(self) -> Iterator[Entry]:
        """The QUEUED entries in seq order; call `published` for each one actually published."""
        while self._to_send:
            yield self._entries[self._to_send.popleft()]

    def published(self, entry: Entry, mid: int) -> None:
        self._apply(entry, Event.PUBLISH)
        entry.mid = mid
        self._by_mid[mid] = entry.seq

    def acknowledged(self, mid: int) -> int | None:
        """Record a PUBACK; returns the seq, or None for a packet id that is not an envelope's."""
        seq = self._by_mid.pop(mid, None)
        if seq is None:
            return None
        entry = self._entries[seq]
        self._apply(entry, Event.PUBACK)
        entry.mid = None
        self._acked.append(seq)
        return seq

    def connection_lost(self) -> None:
        """Everything in flight goes back to QUEUED, to be re-sent in seq order."""
        for entry in self._entries.values():
            self._apply(entry, Event.CONNECTION_LOST)
            entry.mid = None
        self._by_mid.clear()
        self._to_send = collections.deque(
            seq for seq, entry in self._entries.items() if entry.state is EntryState.QUEUED)

    def take_acked(self) -> list[int]:
        """Remove the ACKED entries (freeing their room) and return their seqs, to mark published."""
        acked, self._acked = self._acked, []
        for seq in acked:
            del self._entries[seq]
        return acked


class Backoff:
    """Reconnect delays: exponential from `first_s` up to `cap_s`, each drawn uniformly from
    [d/2, d] so that many devices losing the same broker do not reconnect in lockstep."""

    def __init__(self, first_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        if not 0 < first_s <= cap_s:
            raise ValueError("need 0 < first_s <= cap_s")
        self.first_s = first_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.first_s * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


DEFAULT_RECEIPT_GRACE_S = 30.0


class ResendSchedule:
    """The resend rule for every device of a gateway; times are wall-clock Unix ms.

    `receipted` notes each receipt; `due` says which devices to look at; `select` picks, from a
    device's published, unreceipted rows below its highest receipted seq, those to publish again, and
    schedules the next look at the moment the youngest of the rest comes of age (not before)."""

    def __init__(self, grace_ms: int, receipted: Mapping[str, int] | None = None) -> None:
        if grace_ms < 0:
            raise ValueError("the grace period is not negative")
        self.grace_ms = grace_ms
        self.highest = dict(receipted or {})  # device -> highest receipted seq
        self._check_at: dict[str, int] = {}

    def receipted(self, device_id: str, last_seq: int, now_ms: int) -> None:
        if last_seq > self.highest.get(device_id, -1):
            self.highest[device_id] = last_seq
        self._check_at[device_id] = min(self._check_at.get(device_id, now_ms), now_ms)

    def due(self, now_ms: int) -> list[tuple[str, int]]:
        """(device, highest receipted seq) of each device to look at now."""
        return [(device_id, self.highest[device_id]) for device_id, at in self._check_at.items() if at <= now_ms]

    def select(self, device_id: str, rows: Iterable[tuple[int, bytes, int]], now_ms: int,
               *, more: bool, skip: Iterable[int] = ()) -> list[tuple[int, bytes]]:
        """From (seq, envelope, published_ms) rows below the highest receipted seq, those to resend.
        `more`: the rows were cut at a limit, so look again soon; `skip`: seqs already on their way."""
        cutoff = now_ms - self.grace_ms
        skipped = set(skip)
        chosen: list[tuple[int, bytes]] = []
        next_at: int | None = None  # when a row not chosen now comes of age
        for seq, envelope, published_ms in rows:
            if seq in skipped:  # on its way again: look once its new PUBACK has aged
                published_ms = now_ms
            elif published_ms <= cutoff:
                chosen.append((seq, envelope))
                continue
            next_at = published_ms if next_at is None else min(next_at, published_ms)
        if more and chosen:
            self._check_at[device_id] = now_ms
        elif next_at is not None:
            self._check_at[device_id] = next_at + self.grace_ms
        else:
            self._check_at.pop(device_id, None)
        return chosen
