from __future__ import annotations

import random

import pytest

from edge_agent.delivery import TRANSITIONS, Backoff, DeliveryWindow, EntryState, Event


def rows(*seqs: int) -> list[tuple[int, bytes]]:
    return [(seq, f"envelope-{seq}".encode()) for seq in seqs]


def publish_all(window: DeliveryWindow, first_mid: int = 1) -> dict[int, int]:
    """Publish every queued entry; returns seq -> mid."""
    mids = {}
    for mid, entry in enumerate(window.to_send(), start=first_mid):
        window.published(entry, mid)
        mids[entry.seq] = mid
    return mids


def test_queued_sent_acked_then_taken_for_deletion() -> None:
    window = DeliveryWindow(capacity=4)
    window.load(rows(0, 1, 2))
    assert (window.room, window.read_after) == (1, 2)
    mids = publish_all(window)
    assert [window.state(s) for s in (0, 1, 2)] == [EntryState.SENT] * 3
    assert window.acknowledged(mids[1]) == 1
    assert window.acknowledged(9999) is None  # e.g. the PUBACK of a state message
    assert window.state(1) is EntryState.ACKED
    assert window.take_acked() == [1]
    assert (len(window), window.room, window.state(1)) == (2, 2, None)


def test_a_lost_connection_resends_everything_unacked_in_seq_order() -> None:
    window = DeliveryWindow(capacity=10)
    window.load(rows(5, 6, 7, 8))
    mids = publish_all(window)
    window.acknowledged(mids[6])
    window.connection_lost()
    assert [window.state(s) for s in (5, 6, 7, 8)] == [EntryState.QUEUED, EntryState.ACKED,
                                                        EntryState.QUEUED, EntryState.QUEUED]
    again = [(entry.seq, entry.envelope) for entry in window.to_send()]
    assert again == [(5, b"envelope-5"), (7, b"envelope-7"), (8, b"envelope-8")]  # same bytes, same seq


def test_packet_ids_of_a_lost_connection_are_forgotten() -> None:
    window = DeliveryWindow(capacity=2)
    window.load(rows(0))
    publish_all(window, first_mid=42)
    window.connection_lost()
    assert window.acknowledged(42) is None  # a late PUBACK for the old connection's packet id
    publish_all(window, first_mid=43)
    assert window.acknowledged(43) == 0


def test_loading_out_of_order_or_beyond_capacity_is_a_bug() -> None:
    window = DeliveryWindow(capacity=2)
    window.load(rows(3))
    with pytest.raises(ValueError, match="out of order"):
        window.load(rows(3))
    window.load(rows(4))
    with pytest.raises(ValueError, match="full"):
        window.load(rows(5))


def test_transitions_are_a_table_and_illegal_ones_raise() -> None:
    assert TRANSITIONS[EntryState.QUEUED, Event.PUBLISH] is EntryState.SENT
    assert (EntryState.ACKED, Event.PUBLISH) not in TRANSITIONS
    window = DeliveryWindow(capacity=1)
    window.load(rows(0))
    [entry] = window.to_send()
    window.published(entry, 1)
    with pytest.raises(ValueError, match="no transition from sent on publish"):
        window.published(entry, 2)


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(1.0, 30.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    for attempt, delay in enumerate(delays):
        ceiling = min(30.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays[6:]}) > 1  # jittered, not lockstep at the cap
    backoff.reset()
    assert backoff.next_delay() <= 1.0
    with pytest.raises(ValueError):
        Backoff(0, 1)
