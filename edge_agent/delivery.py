"""Delivery of one device's envelopes from the outbox to the broker, as data (sans-I/O).

An envelope read from the outbox enters the device's `DeliveryWindow` QUEUED, becomes SENT when
published, ACKED on the broker's PUBACK, and is then handed back for deletion from the outbox. A lost
connection returns every SENT envelope to QUEUED, to be published again in seq order on the next
connection: the same bytes under the same seq, so a duplicate is always an exact copy.
"""

from __future__ import annotations

import collections
import enum
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


class EntryState(enum.Enum):
    QUEUED = "queued"  # in the window, not in flight on the current connection
    SENT = "sent"  # published on the current connection, waiting for PUBACK
    ACKED = "acked"  # the broker has it; delete it from the outbox


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
        """Remove the ACKED entries (freeing their room) and return their seqs, for deletion."""
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
