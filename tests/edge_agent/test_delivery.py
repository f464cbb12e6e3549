from __future__ import annotations

import random

import pytest

from edge_agent.delivery import TRANSITIONS, Backoff, DeliveryWindow, EntryState, Event, ResendSchedule


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


def test_resend_adds_older_seqs_without_moving_the_read_position() -> None:
    window = DeliveryWindow(capacity=4)
    window.load(rows(10, 11))
    assert window.resend(rows(3, 10, 4, 5)) == 2  # 10 is already in the window; then the window is full
    assert (window.read_after, window.room) == (11, 0)
    assert [entry.seq for entry in window.to_send()] == [10, 11, 3, 4]


GRACE = 30_000


def test_nothing_is_resent_without_a_later_receipt() -> None:
    schedule = ResendSchedule(GRACE)
    assert schedule.due(10**12) == []  # ingest away: no receipts, no checks, no timers


def test_a_later_receipt_resends_what_is_older_than_the_grace() -> None:
    t = 1_000_000
    schedule = ResendSchedule(GRACE, {"inv-1": 4})
    schedule.receipted("inv-1", 9, t)
    assert schedule.due(t) == [("inv-1", 9)]
    published = [(5, b"e5", t - GRACE - 1), (6, b"e6", t - GRACE), (7, b"e7", t - 10_000), (8, b"e8", t - 5_000)]
    assert schedule.select("inv-1", published, t, more=False) == [(5, b"e5"), (6, b"e6")]
    # The rest is looked at again when the oldest of it comes of age, not before.
    assert schedule.due(t + GRACE - 10_001) == []
    assert schedule.due(t + GRACE - 10_000) == [("inv-1", 9)]
    assert schedule.select("inv-1", published[2:], t + GRACE, more=False) == [(7, b"e7"), (8, b"e8")]
    assert schedule.due(t + 10 * GRACE) == []


def test_seqs_on_their_way_are_not_chosen_and_are_looked_at_after_their_new_grace() -> None:
    t = 2_000_000
    schedule = ResendSchedule(GRACE)
    schedule.receipted("inv-1", 3, t)
    assert schedule.select("inv-1", [(1, b"e1", 0), (2, b"e2", 0)], t, more=False, skip=[1, 2]) == []
    assert schedule.due(t + GRACE - 1) == [] and schedule.due(t + GRACE) == [("inv-1", 3)]


def test_rows_cut_at_the_window_are_looked_at_again_at_once() -> None:
    schedule = ResendSchedule(GRACE)
    schedule.receipted("inv-1", 50, 0)
    assert schedule.select("inv-1", [(1, b"e1", 0)], GRACE, more=True) == [(1, b"e1")]
    assert schedule.due(GRACE) == [("inv-1", 50)]


def test_the_highest_receipt_only_grows() -> None:
    schedule = ResendSchedule(GRACE, {"inv-1": 9})
    schedule.receipted("inv-1", 4, 0)  # a late receipt of an earlier batch
    assert schedule.highest == {"inv-1": 9}
    with pytest.raises(ValueError):
        ResendSchedule(-1)
