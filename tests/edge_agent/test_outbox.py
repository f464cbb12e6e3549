from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge_agent import outbox as outbox_module
from edge_agent.errors import OutboxError
from edge_agent.outbox import (
    ROW_OVERHEAD_BYTES,
    AlarmCode,
    Draft,
    Outbox,
    OverflowPolicy,
    SeqRange,
    batches,
    seq_ranges,
)
from protocol import Ed25519Signer, Metric, Reading, Signer, parse_envelope
from tests.edge_agent.helpers import check_chains

T0 = 1_750_000_000_000
DEVICES = ("inv-1", "inv-2")


@pytest.fixture
def signers() -> dict[str, Signer]:
    return {device: Ed25519Signer.generate() for device in DEVICES}


def drafts(signers: Mapping[str, Signer], t: int, energy: int = 1000) -> list[Draft]:
    return [Draft(device, t, (Reading(Metric.ENERGY_EXPORT_WH, t, energy),), signer)
            for device, signer in signers.items()]


def queued(outbox: Outbox, device: str) -> list[bytes]:
    return [raw for _, raw in outbox.pending(device, -1, 1_000_000)]


def keys(signers: Mapping[str, Signer]) -> dict[str, bytes]:
    return {device: signer.public_key for device, signer in signers.items()}


def next_seqs(outbox: Outbox) -> dict[str, int]:
    return {d.device_id: d.next_seq for d in outbox.status().devices}


def test_append_assigns_seq_and_prev_per_device(tmp_path: Path, signers: dict[str, Signer]) -> None:
    with Outbox(tmp_path / "o.sqlite") as outbox:
        for i in range(5):
            result = outbox.append(drafts(signers, T0 + i * 10_000, 1000 + i), T0 + i * 10_000)
            assert [(a.device_id, a.seq) for a in result.appended] == [(d, i) for d in DEVICES]
        copies = [raw for device in DEVICES for raw in queued(outbox, device)]
        assert next_seqs(outbox) == {"inv-1": 5, "inv-2": 5}
        check_chains(copies, keys(signers), next_seqs(outbox))
        assert [s for s, _ in outbox.pending("inv-1", 1, 2)] == [2, 3]


def test_a_batch_of_many_devices_is_one_append(tmp_path: Path) -> None:
    fleet = {f"meter-{i:03d}": Ed25519Signer.generate() for i in range(100)}
    with Outbox(tmp_path / "o.sqlite") as outbox:
        result = outbox.append(drafts(fleet, T0), T0)
        assert len(result.appended) == 100
        assert outbox.status().queued == 100


def test_seq_is_never_reused_after_delete_or_reopen(tmp_path: Path, signers: dict[str, Signer]) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as outbox:
        outbox.append(drafts(signers, T0), T0)
        outbox.append(drafts(signers, T0 + 1), T0 + 1)
        first = queued(outbox, "inv-1")
        assert outbox.delete_receipted({"inv-1": [(0, 1)], "inv-2": [(0, 1)]}, T0 + 2) == 4
        assert outbox.status().kept == 0
    with Outbox(path) as outbox:
        result = outbox.append(drafts(signers, T0 + 3), T0 + 3)
        assert {a.seq for a in result.appended} == {2}
        check_chains(first + queued(outbox, "inv-1"), {"inv-1": signers["inv-1"].public_key}, {"inv-1": 3})


def test_two_connections_share_one_chain(tmp_path: Path, signers: dict[str, Signer]) -> None:
    with Outbox(tmp_path / "o.sqlite") as a, Outbox(tmp_path / "o.sqlite") as b:
        for i in range(4):
            (a if i % 2 else b).append(drafts(signers, T0 + i), T0 + i)
        check_chains([raw for d in DEVICES for raw in queued(a, d)], keys(signers), {d: 4 for d in DEVICES})


def test_invalid_readings_consume_no_seq(tmp_path: Path, signers: dict[str, Signer]) -> None:
    bad = Draft("inv-1", T0, (Reading(Metric.IRRADIANCE_W_M2, T0, 5000.0),), signers["inv-1"])
    empty = Draft("inv-2", T0, (), signers["inv-2"])
    with Outbox(tmp_path / "o.sqlite") as outbox:
        result = outbox.append([bad, empty], T0)
        assert [i.device_id for i in result.invalid] == ["inv-1", "inv-2"]
        assert "irradiance" in result.invalid[0].reason
        assert outbox.append(drafts(signers, T0 + 1), T0 + 1).appended[0].seq == 0


def test_a_receipt_records_the_last_receipted_seq_and_frees_the_budget(tmp_path: Path,
                                                                        signers: dict[str, Signer]) -> None:
    with Outbox(tmp_path / "o.sqlite") as outbox:
        for i in range(3):
            outbox.append(drafts(signers, T0 + i), T0 + i)
        assert outbox.status().used_bytes > 0
        assert outbox.delete_receipted({"inv-1": [(0, 1)]}, T0 + 50) == 2
        assert outbox.delete_receipted({"inv-1": [(1, 1)]}, T0 + 50) == 0  # the receipt of a re-sent duplicate
        inv1 = next(d for d in outbox.status().devices if d.device_id == "inv-1")
        assert (inv1.queued, inv1.last_seq, inv1.receipted_seq, inv1.receipted_ms) == (1, 2, 1, T0 + 50)
        outbox.delete_receipted({"inv-1": [(2, 2)], "inv-2": [(0, 2)]}, T0 + 60)
        assert outbox.status().used_bytes == 0
        assert outbox.receipted_seqs() == {"inv-1": 2, "inv-2": 2}


def test_the_outbox_file_is_wal_and_survives_reopen(tmp_path: Path, signers: dict[str, Signer]) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as outbox:
        outbox.append(drafts(signers, T0), T0)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_missing_or_uninitialised_outbox_is_an_error_when_not_creating(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="no outbox"):
        Outbox(tmp_path / "absent.sqlite", create=False)
    sqlite3.connect(tmp_path / "empty.sqlite").close()  # the file exists, the schema does not yet
    with pytest.raises(OutboxError, match="not initialised yet"):
        Outbox(tmp_path / "empty.sqlite", create=False)


def test_a_file_that_is_not_an_outbox_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(OutboxError, match="not a database"):
        Outbox(path)


def budget_for(envelopes: int, signers: Mapping[str, Signer], tmp_path: Path) -> int:
    """max_bytes that holds exactly `envelopes` of the size `drafts` produces."""
    with Outbox(tmp_path / "probe.sqlite") as probe:
        size = probe.append(drafts(signers, T0)[:1], T0).appended[0].size
    return envelopes * (size + ROW_OVERHEAD_BYTES)


def test_drop_oldest_keeps_the_bound_and_records_every_eviction(tmp_path: Path,
                                                               signers: dict[str, Signer]) -> None:
    budget = budget_for(10, signers, tmp_path)
    with Outbox(tmp_path / "o.sqlite", max_bytes=budget, policy=OverflowPolicy.DROP_OLDEST) as outbox:
        evicted: list[SeqRange] = []
        for i in range(30):
            result = outbox.append(drafts(signers, T0 + i * 10_000), T0 + i * 10_000)
            assert len(result.appended) == 2 and not result.refused
            evicted += result.evicted
            assert outbox.status().used_bytes <= budget
        for device in DEVICES:
            kept = [s for s, _ in outbox.pending(device, -1, 100)]
            ranges = outbox.evicted_ranges(device)
            assert [(r.first_seq, r.last_seq) for r in ranges] == [(0, 29 - len(kept))]  # merged into one
            assert sum(r.count for r in evicted if r.device_id == device) == 30 - len(kept)
            # Nothing silently dropped: every seq is either still queued or recorded as evicted.
            evicted_seqs = [s for r in ranges for s in range(r.first_seq, r.last_seq + 1)]
            assert sorted(kept + evicted_seqs) == list(range(30))
        alarms = outbox.alarms()
        assert {(a.code, a.device_id) for a in alarms} == {(AlarmCode.OUTBOX_EVICTED, d) for d in DEVICES}
        assert "evicted" in alarms[0].describe() and alarms[0].to_json()["ranges"]


def test_refuse_new_drops_nothing_and_resumes_without_a_gap(tmp_path: Path,
                                                             signers: dict[str, Signer]) -> None:
    budget = budget_for(6, signers, tmp_path)
    with Outbox(tmp_path / "o.sqlite", max_bytes=budget, policy=OverflowPolicy.REFUSE_NEW) as outbox:
        for i in range(3):
            assert len(outbox.append(drafts(signers, T0 + i), T0 + i).appended) == 2
        before = {d: queued(outbox, d) for d in DEVICES}
        for i in range(3, 8):
            result = outbox.append(drafts(signers, T0 + i), T0 + i)
            assert result.refused == DEVICES and not result.appended and not result.evicted
        assert {d: queued(outbox, d) for d in DEVICES} == before
        [alarm, _] = outbox.alarms()
        assert (alarm.code, alarm.count) == (AlarmCode.OUTBOX_REFUSED, 5)
        assert (alarm.first_ms, alarm.last_ms) == (T0 + 3, T0 + 7)
        outbox.delete_receipted({d: [(0, 2)] for d in DEVICES}, T0 + 8)
        assert [a.seq for a in outbox.append(drafts(signers, T0 + 9), T0 + 9).appended] == [3, 3]


def test_a_budget_smaller_than_one_envelope_refuses_rather_than_overflows(tmp_path: Path,
                                                                          signers: dict[str, Signer]) -> None:
    with Outbox(tmp_path / "o.sqlite", max_bytes=100) as outbox:
        assert outbox.append(drafts(signers, T0), T0).refused == DEVICES
        assert outbox.status().queued == 0


def test_the_chain_continues_across_evictions(tmp_path: Path, signers: dict[str, Signer]) -> None:
    """Chain state is kept apart from the queue: evicting envelopes never rewinds seq or prev."""
    budget = budget_for(2, signers, tmp_path)
    one = {"inv-1": signers["inv-1"]}
    with Outbox(tmp_path / "o.sqlite", max_bytes=budget) as outbox:
        all_copies = []
        for i in range(6):
            outbox.append(drafts(one, T0 + i), T0 + i)
            all_copies += queued(outbox, "inv-1")
        assert [parse_envelope(raw).payload.seq for raw in queued(outbox, "inv-1")][-1] == 5
        check_chains(all_copies, keys(one), {"inv-1": 6})


def test_seq_ranges_groups_consecutive_seqs_per_device() -> None:
    rows = [("a", 1), ("b", 7), ("a", 2), ("a", 3), ("b", 8), ("a", 5)]
    assert seq_ranges(rows) == [SeqRange("a", 1, 3), SeqRange("a", 5, 5), SeqRange("b", 7, 8)]
    assert seq_ranges([]) == []
    assert SeqRange("a", 1, 3).count == 3


def test_a_full_disk_is_a_full_outbox(tmp_path: Path, signers: dict[str, Signer],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """R9's rule in small: on a disk with room for ~300 KB beyond the reserve, appends never fail with
    SQLITE_FULL; drop_oldest evicts the oldest envelopes, records them and raises the alarm."""
    capacity = small_disk(tmp_path, monkeypatch, 300_000)
    with Outbox(tmp_path / "o.sqlite") as outbox:
        results = [outbox.append(drafts(signers, T0 + i * 10_000, 1000 + i), T0 + i * 10_000) for i in range(3000)]
        assert all(len(r.appended) == 2 and not r.refused for r in results)
        assert any(r.evicted for r in results) and all(r.disk_bound for r in results if r.evicted)
        assert files_size(tmp_path) <= capacity
        for device in DEVICES:
            kept = [s for s, _ in outbox.pending(device, -1, 10_000)]
            ranges = outbox.evicted_ranges(device)
            assert ranges and ranges[0].first_seq == 0  # oldest first
            evicted = [s for r in ranges for s in range(r.first_seq, r.last_seq + 1)]
            assert sorted(kept + evicted) == list(range(3000))
        assert {a.code for a in outbox.alarms()} == {AlarmCode.OUTBOX_EVICTED}


def test_draining_a_full_disk_stays_within_the_reserve(tmp_path: Path, signers: dict[str, Signer],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """R9 after the uplink is back: the PUBACKs and receipts of a whole disk-bound outbox, recorded in
    one call each, must fit the reserve left for the write-ahead log. One transaction for all of them
    wrote ~2 MB of log at once: SQLITE_FULL on a real disk."""
    capacity = small_disk(tmp_path, monkeypatch, 1_800_000)
    logs: list[int] = []  # the log's size whenever it is checkpointed: its largest since the last one
    checkpoint = Outbox._checkpoint

    def measured_checkpoint(outbox: Outbox) -> None:
        logs.append(outbox._wal_bytes())
        checkpoint(outbox)

    monkeypatch.setattr(Outbox, "_checkpoint", measured_checkpoint)
    with Outbox(tmp_path / "o.sqlite") as outbox:
        for i in range(4000):
            outbox.append(drafts(signers, T0 + i * 10_000, 1000 + i), T0 + i * 10_000)
        assert outbox.alarms(), "the disk did not fill up"
        acked = {device: [s for s, _ in outbox.pending(device, -1, 10_000)] for device in DEVICES}
        rows = sum(map(len, acked.values()))
        assert rows > 5000
        assert outbox.mark_published(acked, T0) == rows
        assert files_size(tmp_path) <= capacity
        receipts = {device: [(seqs[0], seqs[-1])] for device, seqs in acked.items()}
        assert outbox.delete_receipted(receipts, T0) == rows
        assert files_size(tmp_path) <= capacity
        assert outbox.status().kept == 0
        assert outbox.receipted_seqs() == {device: seqs[-1] for device, seqs in acked.items()}
        logs.append(outbox._wal_bytes())
    assert max(logs) <= outbox_module.WAL_LIMIT_BYTES + 128 * 1024 < outbox_module.DISK_RESERVE_BYTES


def test_a_reader_that_never_pauses_does_not_starve_the_log_into_a_full_disk(
        tmp_path: Path, signers: dict[str, Signer], monkeypatch: pytest.MonkeyPatch) -> None:
    """The publisher reads the outbox all the time while the agent appends. SQLite's automatic
    checkpoints then never restart the log: it grew past the reserve and, on a real disk (R9 in CI),
    every later write failed with SQLITE_FULL."""
    capacity = small_disk(tmp_path, monkeypatch, 300_000)
    stop = threading.Event()

    def publisher() -> None:
        with Outbox(tmp_path / "o.sqlite") as reader:
            while not stop.is_set():
                for device in DEVICES:
                    reader.pending(device, -1, 100)

    wal = tmp_path / "o.sqlite-wal"
    largest_log = largest_files = 0
    with Outbox(tmp_path / "o.sqlite") as outbox:
        thread = threading.Thread(target=publisher)
        thread.start()
        try:
            for i in range(2500):
                outbox.append(drafts(signers, T0 + i * 10_000, 1000 + i), T0 + i * 10_000)
                largest_log = max(largest_log, wal.stat().st_size)
                largest_files = max(largest_files, files_size(tmp_path))
        finally:
            stop.set()
            thread.join()
        assert outbox.alarms(), "the disk did not fill up"
    assert largest_log <= outbox_module.WAL_LIMIT_BYTES + 64 * 1024
    assert largest_files <= capacity


def test_batches_split_ranges_into_bounded_runs() -> None:
    ranges = [SeqRange("a", 0, 4), SeqRange("b", 7, 7), SeqRange("a", 9, 12)]
    assert list(batches(ranges, 4)) == [
        [SeqRange("a", 0, 3)], [SeqRange("a", 4, 4), SeqRange("b", 7, 7), SeqRange("a", 9, 10)],
        [SeqRange("a", 11, 12)]]
    assert list(batches([], 4)) == []
    assert [r for b in batches(ranges, 1) for r in b] == [SeqRange(d, s, s) for d, a, z in
                                                          [("a", 0, 4), ("b", 7, 7), ("a", 9, 12)]
                                                          for s in range(a, z + 1)]


def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, room: int) -> int:
    """Make the outbox see a disk of `room` bytes beyond the reserve that holds only its own files."""
    capacity = outbox_module.DISK_RESERVE_BYTES + room

    def statvfs(path: object) -> SimpleNamespace:
        used = sum(f.stat().st_size for f in tmp_path.iterdir())
        return SimpleNamespace(f_bavail=max(0, capacity - used), f_frsize=1)

    monkeypatch.setattr(outbox_module.os, "statvfs", statvfs)
    return capacity


def files_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir())


def test_an_envelope_is_queued_then_published_then_deleted_by_its_receipt(tmp_path: Path,
                                                                          signers: dict[str, Signer]) -> None:
    with Outbox(tmp_path / "o.sqlite") as outbox:
        for i in range(4):
            outbox.append(drafts(signers, T0 + i), T0 + i)
        used = outbox.status().used_bytes
        assert outbox.mark_published({"inv-1": [0, 1, 3]}, 5_000) == 3  # PUBACKs
        # Published rows are no longer offered for publishing, but are kept and still fill the outbox.
        assert [s for s, _ in outbox.pending("inv-1", -1, 10)] == [2]
        inv1 = next(d for d in outbox.status().devices if d.device_id == "inv-1")
        assert (inv1.queued, inv1.published, inv1.kept) == (1, 3, 4)
        assert outbox.status().used_bytes == used
        assert [(s, t) for s, _, t in outbox.published_before("inv-1", 3, 10)] == [(0, 5_000), (1, 5_000)]
        assert outbox.delete_receipted({"inv-1": [(1, 2)]}, T0 + 9) == 2  # a receipt may precede the PUBACK
        assert outbox.mark_published({"inv-1": [2]}, 6_000) == 0  # ... and the row stays gone
        assert [s for s, _, _ in outbox.published_before("inv-1", 10, 10)] == [0, 3]
        assert outbox.status().published == 2 and outbox.status().queued == 4  # inv-2 untouched


def test_eviction_takes_published_rows_too_oldest_first(tmp_path: Path, signers: dict[str, Signer]) -> None:
    one = {"inv-1": signers["inv-1"]}
    budget = budget_for(3, one, tmp_path)
    with Outbox(tmp_path / "o.sqlite", max_bytes=budget) as outbox:
        for i in range(3):
            outbox.append(drafts(one, T0 + i), T0 + i)
        outbox.mark_published({"inv-1": [0, 1, 2]}, 1)
        evicted = outbox.append(drafts(one, T0 + 3), T0 + 3).evicted
        assert evicted and evicted[0].first_seq == 0
        assert outbox.evicted_ranges("inv-1")[0].first_seq == 0


# The tables and triggers schema 1 (PUBACK deleted the row) created, as far as the migration touches them.
_SCHEMA_1 = """
CREATE TABLE devices (device_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, last_hash BLOB NOT NULL,
    queued INTEGER NOT NULL DEFAULT 0, queued_bytes INTEGER NOT NULL DEFAULT 0, appended_ms INTEGER,
    acked_seq INTEGER, acked_ms INTEGER) STRICT;
CREATE TABLE queue (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, seq INTEGER NOT NULL,
    envelope BLOB NOT NULL, UNIQUE (device_id, seq)) STRICT;
CREATE TRIGGER queue_insert AFTER INSERT ON queue BEGIN
    UPDATE devices SET queued = queued + 1, queued_bytes = queued_bytes + length(NEW.envelope)
     WHERE device_id = NEW.device_id;
END;
CREATE TRIGGER queue_delete AFTER DELETE ON queue BEGIN
    UPDATE devices SET queued = queued - 1, queued_bytes = queued_bytes - length(OLD.envelope)
     WHERE device_id = OLD.device_id;
END;
CREATE TABLE evictions (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL) STRICT;
CREATE TABLE refusals (device_id TEXT PRIMARY KEY, intervals INTEGER NOT NULL, first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL) STRICT;
INSERT INTO devices (device_id, next_seq, last_hash, acked_seq) VALUES ('inv-1', 8, zeroblob(32), 5);
INSERT INTO queue (device_id, seq, envelope) VALUES ('inv-1', 6, x'06'), ('inv-1', 7, x'07');
PRAGMA user_version = 1;
"""


def test_a_schema_1_outbox_is_migrated_with_its_rows_queued(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA_1)
    with Outbox(path) as outbox:
        [inv1] = outbox.status().devices
        assert (inv1.queued, inv1.published, inv1.receipted_seq) == (2, 0, 5)
        assert outbox.pending("inv-1", -1, 10) == [(6, b"\x06"), (7, b"\x07")]
        assert outbox.mark_published({"inv-1": [6, 7]}, 1) == 2
        assert (outbox.status().queued, outbox.status().published) == (0, 2)
        assert outbox.delete_receipted({"inv-1": [(6, 6)]}, 2) == 1
        assert (outbox.status().kept, outbox.status().published) == (1, 1)
