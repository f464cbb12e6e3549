"""The outbox: every envelope is numbered, chained, signed and persisted before it can be published,
and stays until ingest's receipt says it is durably recorded.

A row is *queued* until the broker's PUBACK, then *published* (`published_ms`, wall-clock time of the
PUBACK) and kept: a broker may acknowledge and still lose a message (a crash before its snapshot, a
shared subscription it forgot). Ingest's receipt, sent after its commit, deletes the row. Published
rows still count toward the outbox bound and are evicted like queued ones.

SQLite in WAL mode with `synchronous=FULL`, so a committed append survives kill -9 and power loss.
Chain state (next `seq`, hash of the last envelope) lives in `devices`, apart from the queue, so a
`seq` is never reused even after its envelope was acknowledged and deleted or evicted. One
transaction appends the envelopes of all devices for one interval (one fsync per interval).

The queue is bounded by `max_bytes` and by the disk: an append never takes the file system's free
space below `disk_reserve` (room for the write-ahead log, which a checkpoint bounds, and for the deletes
and eviction records that free space again), so a full disk is an outbox full like any other rather
than a SQLITE_FULL on every interval. When it is full the configured `OverflowPolicy` applies, and
either way nothing disappears silently: `drop_oldest` records every evicted device/seq range in
`evictions`, `refuse_new` counts the refused intervals in `refusals`, and both surface as `Alarm`s
(in `mrv edge status`, in the device's retained state message and as WARNING logs).

Use an `Outbox` from one thread at a time; threads working concurrently (the agent's sampler and
its publisher) each open their own on the same file.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import OutboxError
from protocol.envelope import GENESIS_PREV, Payload, Reading, envelope_hash, sign_envelope
from protocol.errors import EnvelopeError
from protocol.keys import Signer

SCHEMA_VERSION = 2
# Bytes charged per queued envelope on top of its own size: row header, the (device, seq) index
# entry and page slack; measured ~74 bytes for 326-byte envelopes of 13-character device ids.
ROW_OVERHEAD_BYTES = 80
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
# The write-ahead log is checkpointed every WAL_PAGES pages (~1 MiB) and cut back to WAL_LIMIT_BYTES
# after a checkpoint. Appends leave DISK_RESERVE_BYTES of the disk to the log (its file counts as part
# of the reserve) and to the deletes and eviction records that free space again.
WAL_PAGES = 256
WAL_LIMIT_BYTES = 1536 * 1024
DISK_RESERVE_BYTES = 2 * 1024 * 1024
# PUBACKs and receipts are written in transactions of at most this many rows (~100 KiB of log). The log
# is bounded by WAL_LIMIT_BYTES between transactions (see `_checkpoint`) and by this within one, which
# keeps it inside DISK_RESERVE_BYTES: a flush of thousands of rows in one transaction did not.
WRITE_ROWS = 256
ALARM_RANGES = 10  # evicted ranges quoted in an alarm; `evicted_ranges` returns them all

# What schema 2 added: the published state, its index and counts.
_PUBLISHED = """
CREATE INDEX IF NOT EXISTS queue_unpublished ON queue (device_id, seq) WHERE published_ms IS NULL;
CREATE TRIGGER IF NOT EXISTS queue_publish AFTER UPDATE OF published_ms ON queue
  WHEN OLD.published_ms IS NULL AND NEW.published_ms IS NOT NULL BEGIN
    UPDATE devices SET published = published + 1 WHERE device_id = NEW.device_id;
END;
CREATE TRIGGER IF NOT EXISTS queue_delete AFTER DELETE ON queue BEGIN
    UPDATE devices SET queued = queued - 1, queued_bytes = queued_bytes - length(OLD.envelope),
                       published = published - (OLD.published_ms IS NOT NULL)
     WHERE device_id = OLD.device_id;
END;
"""
# Schema 1 deleted a row on PUBACK; its rows are all still queued. Then _PUBLISHED.
_MIGRATE_FROM_1 = """
ALTER TABLE devices RENAME COLUMN acked_seq TO receipted_seq;
ALTER TABLE devices RENAME COLUMN acked_ms TO receipted_ms;
ALTER TABLE devices ADD COLUMN published INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue ADD COLUMN published_ms INTEGER;
DROP TRIGGER queue_delete;
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id    TEXT PRIMARY KEY,
    next_seq     INTEGER NOT NULL,   -- only ever grows: a seq is never reused
    last_hash    BLOB NOT NULL,      -- envelope_hash of seq next_seq - 1: the next envelope's prev
    queued       INTEGER NOT NULL DEFAULT 0,   -- rows kept: not yet acknowledged, or published
    queued_bytes INTEGER NOT NULL DEFAULT 0,
    published    INTEGER NOT NULL DEFAULT 0,   -- rows acknowledged by the broker, not yet receipted
    appended_ms  INTEGER,
    receipted_seq INTEGER,           -- highest seq ingest's receipts confirmed
    receipted_ms  INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS queue (
    id        INTEGER PRIMARY KEY,   -- append order, so drop_oldest evicts the lowest ids
    device_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    envelope  BLOB NOT NULL,
    published_ms INTEGER,            -- NULL: queued; else wall-clock ms of the last PUBACK
    UNIQUE (device_id, seq)
) STRICT;
CREATE TRIGGER IF NOT EXISTS queue_insert AFTER INSERT ON queue BEGIN
    UPDATE devices SET queued = queued + 1, queued_bytes = queued_bytes + length(NEW.envelope)
     WHERE device_id = NEW.device_id;
END;
CREATE TABLE IF NOT EXISTS evictions (
    id        INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    first_ms  INTEGER NOT NULL,
    last_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS evictions_by_device ON evictions (device_id, last_seq);
CREATE TABLE IF NOT EXISTS refusals (
    device_id TEXT PRIMARY KEY,
    intervals INTEGER NOT NULL,
    first_ms  INTEGER NOT NULL,
    last_ms   INTEGER NOT NULL
) STRICT;
"""


class OverflowPolicy(enum.StrEnum):
    """What a full outbox does with a new envelope."""

    DROP_OLDEST = "drop_oldest"  # evict the oldest queued envelopes (registers keep the energy totals)
    REFUSE_NEW = "refuse_new"  # keep everything queued, stop appending until there is room


class AlarmCode(enum.StrEnum):
    OUTBOX_EVICTED = "outbox_evicted"
    OUTBOX_REFUSED = "outbox_refused"


@dataclass(frozen=True, slots=True)
class Draft:
    """One device's readings for one interval; the outbox gives it its seq and prev and signs it."""

    device_id: str
    device_time_ms: int
    readings: tuple[Reading, ...]
    signer: Signer


@dataclass(frozen=True, slots=True)
class Appended:
    device_id: str
    seq: int
    size: int


@dataclass(frozen=True, slots=True)
class SeqRange:
    """Consecutive seqs first_seq..last_seq (inclusive) of one device."""

    device_id: str
    first_seq: int
    last_seq: int

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


@dataclass(frozen=True, slots=True)
class Invalid:
    """A draft the protocol refused to encode (e.g. a reading out of its metric's range)."""

    device_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class AppendResult:
    appended: tuple[Appended, ...]
    evicted: tuple[SeqRange, ...]  # drop_oldest made room by evicting these
    refused: tuple[str, ...]  # device ids whose envelope did not fit (refuse_new, or budget < one envelope)
    invalid: tuple[Invalid, ...]
    disk_bound: bool = False  # the disk's free space, not max_bytes, was the limit of this append


@dataclass(frozen=True, slots=True)
class Alarm:
    """A standing condition an operator must know about; it stays until the outbox file is reset."""

    code: AlarmCode
    device_id: str
    count: int  # envelopes evicted, or intervals refused
    first_ms: int
    last_ms: int
    ranges: tuple[tuple[int, int], ...] = ()  # latest evicted (first_seq, last_seq) ranges

    def describe(self) -> str:
        match self.code:
            case AlarmCode.OUTBOX_EVICTED:
                shown = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in self.ranges)
                return (f"outbox full: {self.count} envelopes evicted before ingest confirmed them "
                        f"(latest seq ranges {shown})")
            case AlarmCode.OUTBOX_REFUSED:
                return f"outbox full: {self.count} intervals not recorded (refuse_new policy)"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code.value, "count": self.count, "first_ms": self.first_ms,
                                "last_ms": self.last_ms, "message": self.describe()}
        if self.ranges:
            data["ranges"] = [list(r) for r in self.ranges]
        return data


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device_id: str
    next_seq: int
    kept: int  # rows in the outbox: queued + published
    kept_bytes: int
    published: int  # acknowledged by the broker, not yet receipted by ingest
    appended_ms: int | None
    receipted_seq: int | None
    receipted_ms: int | None

    @property
    def queued(self) -> int:
        """Not yet acknowledged by the broker."""
        return self.kept - self.published

    @property
    def last_seq(self) -> int | None:
        return self.next_seq - 1 if self.next_seq else None


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    path: Path
    max_bytes: int
    policy: OverflowPolicy
    used_bytes: int
    devices: tuple[DeviceStatus, ...]
    alarms: tuple[Alarm, ...]

    @property
    def queued(self) -> int:
        return sum(d.queued for d in self.devices)

    @property
    def published(self) -> int:
        return sum(d.published for d in self.devices)

    @property
    def kept(self) -> int:
        return sum(d.kept for d in self.devices)


def seq_ranges(rows: Iterable[tuple[str, int]]) -> list[SeqRange]:
    """Group (device_id, seq) pairs, ascending per device, into ranges of consecutive seqs."""
    open_ranges: dict[str, list[int]] = {}
    ranges: list[SeqRange] = []
    for device_id, seq in rows:
        current = open_ranges.get(device_id)
        if current is not None and seq == current[1] + 1:
            current[1] = seq
            continue
        if current is not None:
            ranges.append(SeqRange(device_id, current[0], current[1]))
        open_ranges[device_id] = [seq, seq]
    ranges += [SeqRange(device_id, first, last) for device_id, (first, last) in open_ranges.items()]
    return ranges


def batches(ranges: Iterable[SeqRange], size: int) -> Iterator[list[SeqRange]]:
    """The ranges in order, split so that each batch spans at most `size` seqs."""
    batch: list[SeqRange] = []
    room = size
    for r in ranges:
        first = r.first_seq
        while first <= r.last_seq:
            last = min(r.last_seq, first + room - 1)
            batch.append(SeqRange(r.device_id, first, last))
            room -= last - first + 1
            first = last + 1
            if room == 0:
                yield batch
                batch, room = [], size
    if batch:
        yield batch


class Outbox:
    """The SQLite outbox at `path` (created unless `create=False`)."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 policy: OverflowPolicy = OverflowPolicy.DROP_OLDEST, create: bool = True,
                 disk_reserve: int = DISK_RESERVE_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.policy = OverflowPolicy(policy)
        self.disk_reserve = disk_reserve
        if not create and not self.path.exists():
            raise OutboxError(f"no outbox at {self.path} (the agent creates it on its first run)")
        with self._errors():
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
        try:
            with self._errors():
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = FULL")
                self._db.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
                self._db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
                self._check_schema(create)
        except BaseException:
            self._db.close()
            raise

    def _check_schema(self, create: bool) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version == 0 and not create:  # e.g. status while the agent is creating it
            raise OutboxError(f"the outbox {self.path} is not initialised yet (the agent creates it "
                              "on its first run)")
        if version not in (0, 1):
            raise OutboxError(f"{self.path} has outbox schema version {version}, this agent needs "
                              f"{SCHEMA_VERSION}")
        script = (_SCHEMA if version == 0 else _MIGRATE_FROM_1) + _PUBLISHED
        try:
            self._db.executescript(
                f"BEGIN IMMEDIATE; {script} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise OutboxError(f"outbox {self.path}: {e}") from e

    @property
    def _wal_path(self) -> Path:
        return self.path.with_name(self.path.name + "-wal")

    def _wal_bytes(self) -> int:
        try:
            return self._wal_path.stat().st_size
        except FileNotFoundError:
            return 0

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._errors():
            # IMMEDIATE takes the write lock up front: the chain state read below cannot go stale.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException as e:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error) and e.sqlite_errorcode == sqlite3.SQLITE_FULL:
                    self._checkpoint()  # give the log's room back, so that the next write can free space
                raise
            if self._wal_bytes() > WAL_LIMIT_BYTES:
                self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the log into the database and truncate it, waiting (busy timeout) for readers to let go.
        SQLite's automatic checkpoints never wait: a reader that is always busy (the publisher, polling
        status) keeps them from restarting the log, which then grows past the disk reserve and every
        write fails with SQLITE_FULL, for good."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def append(self, drafts: Sequence[Draft], now_ms: int) -> AppendResult:
        """Number, chain, sign and persist the drafts (any devices, in order) in one transaction.

        When this returns, every envelope in `appended` is durable. Drafts whose readings the
        protocol refuses come back in `invalid` and consume no seq.
        """
        appended: list[Appended] = []
        evicted: list[SeqRange] = []
        refused: list[str] = []
        invalid: list[Invalid] = []
        rows: list[tuple[str, int, bytes]] = []
        moved: set[str] = set()  # devices whose chain head advanced
        with self._transaction():
            used = self._used_bytes()
            limit = min(self.max_bytes, used + self._disk_room())
            # Evict a little more than needed, so a full outbox does not evict on every interval.
            slack = max(limit, 0) // 100
            heads = {device_id: (seq, prev) for device_id, seq, prev in self._db.execute(
                "SELECT device_id, next_seq, last_hash FROM devices")}
            for draft in drafts:
                if draft.device_id not in heads:
                    self._db.execute("INSERT INTO devices (device_id, next_seq, last_hash) VALUES (?, 0, ?)",
                                     (draft.device_id, GENESIS_PREV))
                    heads[draft.device_id] = (0, GENESIS_PREV)
                seq, prev = heads[draft.device_id]
                payload = Payload(draft.device_id, seq, prev, draft.device_time_ms, draft.readings)
                try:
                    raw = sign_envelope(payload, draft.signer)
                except EnvelopeError as e:
                    invalid.append(Invalid(draft.device_id, str(e)))
                    continue
                need = len(raw) + ROW_OVERHEAD_BYTES
                if used + need > limit:
                    # Only envelopes of earlier transactions are evicted: this batch is the newest.
                    match self.policy:
                        case OverflowPolicy.DROP_OLDEST:
                            ranges, freed = self._evict(used + need - limit + slack, now_ms)
                            evicted += ranges
                            used -= freed
                        case OverflowPolicy.REFUSE_NEW:
                            pass
                if used + need > limit:
                    self._record_refusal(draft.device_id, now_ms)
                    refused.append(draft.device_id)
                    continue
                rows.append((draft.device_id, seq, raw))
                heads[draft.device_id] = (seq + 1, envelope_hash(raw))
                moved.add(draft.device_id)
                used += need
                appended.append(Appended(draft.device_id, seq, len(raw)))
            self._db.executemany("INSERT INTO queue (device_id, seq, envelope) VALUES (?, ?, ?)", rows)
            self._db.executemany(
                "UPDATE devices SET next_seq = ?, last_hash = ?, appended_ms = ? WHERE device_id = ?",
                ((*heads[device_id], now_ms, device_id) for device_id in moved))
        return AppendResult(tuple(appended), tuple(evicted), tuple(refused), tuple(invalid),
                            disk_bound=limit < self.max_bytes)

    def _used_bytes(self) -> int:
        row = self._db.execute("SELECT coalesce(sum(queued_bytes + queued * ?), 0) FROM devices",
                               (ROW_OVERHEAD_BYTES,)).fetchone()
        return int(row[0])

    def _disk_room(self) -> int:
        """Bytes the queue may still grow by on disk: free space, the write-ahead log's file and the
        database's free pages, less the pages not yet checkpointed into the database file (they will
        need room there) and the reserve."""
        disk = os.statvfs(self.path.parent)
        page_size, pages, free_pages = (int(self._db.execute(f"PRAGMA {name}").fetchone()[0])
                                        for name in ("page_size", "page_count", "freelist_count"))
        unsaved = max(0, pages * page_size - self.path.stat().st_size)
        return (disk.f_bavail * disk.f_frsize + self._wal_bytes() + free_pages * page_size - unsaved
                - self.disk_reserve)

    def _evict(self, at_least: int, now_ms: int) -> tuple[list[SeqRange], int]:
        victims: list[tuple[str, int]] = []
        freed = 0
        last_id = None
        # Close the cursor before deleting: a half-read SELECT on the table being deleted from.
        with contextlib.closing(self._db.execute(
                "SELECT id, device_id, seq, length(envelope) FROM queue ORDER BY id")) as cursor:
            for row_id, device_id, seq, size in cursor:
                if freed >= at_least:
                    break
                victims.append((device_id, seq))
                freed += size + ROW_OVERHEAD_BYTES
                last_id = row_id
        if last_id is None:
            return [], 0
        self._db.execute("DELETE FROM queue WHERE id <= ?", (last_id,))
        ranges = seq_ranges(victims)
        for r in ranges:
            extended = self._db.execute(
                "UPDATE evictions SET last_seq = ?, last_ms = ? WHERE device_id = ? AND last_seq = ?",
                (r.last_seq, now_ms, r.device_id, r.first_seq - 1)).rowcount
            if not extended:
                self._db.execute(
                    "INSERT INTO evictions (device_id, first_seq, last_seq, first_ms, last_ms) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (r.device_id, r.first_seq, r.last_seq, now_ms, now_ms))
        return ranges, freed

    def _record_refusal(self, device_id: str, now_ms: int) -> None:
        self._db.execute(
            "INSERT INTO refusals (device_id, intervals, first_ms, last_ms) VALUES (?, 1, ?, ?) "
            "ON CONFLICT (device_id) DO UPDATE SET intervals = intervals + 1, last_ms = excluded.last_ms",
            (device_id, now_ms, now_ms))

    def pending(self, device_id: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` queued (not yet published) (seq, envelope) of a device with seq > after_seq,
        in seq order."""
        with self._errors():
            return self._db.execute(
                "SELECT seq, envelope FROM queue INDEXED BY queue_unpublished "
                "WHERE device_id = ? AND seq > ? AND published_ms IS NULL ORDER BY seq LIMIT ?",
                (device_id, after_seq, limit)).fetchall()

    def published_before(self, device_id: str, below_seq: int, limit: int) -> list[tuple[int, bytes, int]]:
        """Up to `limit` published, unreceipted (seq, envelope, published_ms) of a device with
        seq < below_seq, in seq order: the candidates of the resend rule."""
        with self._errors():
            return self._db.execute(
                "SELECT seq, envelope, published_ms FROM queue WHERE device_id = ? AND seq < ? "
                "AND published_ms IS NOT NULL ORDER BY seq LIMIT ?", (device_id, below_seq, limit)).fetchall()

    def mark_published(self, acked: Mapping[str, Sequence[int]], wall_ms: int) -> int:
        """Record the broker's PUBACKs (all devices, WRITE_ROWS rows per transaction); returns how many
        rows were kept (a row receipted before its PUBACK was recorded is gone, and stays gone)."""
        ranges = [r for device_id, seqs in acked.items() for r in seq_ranges((device_id, s) for s in sorted(seqs))]
        marked = 0
        for batch in batches(ranges, WRITE_ROWS):
            with self._transaction():
                for r in batch:
                    marked += self._db.execute(
                        "UPDATE queue SET published_ms = ? WHERE device_id = ? AND seq BETWEEN ? AND ?",
                        (wall_ms, r.device_id, r.first_seq, r.last_seq)).rowcount
        return marked

    def delete_receipted(self, receipted: Mapping[str, Sequence[tuple[int, int]]], now_ms: int) -> int:
        """Delete what ingest's receipts name, (first, last) seq ranges per device, WRITE_ROWS seqs per
        transaction; returns how many rows were still kept."""
        spans = [SeqRange(device_id, first, last) for device_id, pairs in receipted.items() for first, last in pairs]
        deleted = 0
        for batch in batches(spans, WRITE_ROWS):
            with self._transaction():
                deleted += self._db.executemany(
                    "DELETE FROM queue WHERE device_id = ? AND seq BETWEEN ? AND ?",
                    ((r.device_id, r.first_seq, r.last_seq) for r in batch)).rowcount
                receipted_to: dict[str, int] = {}
                for r in batch:
                    receipted_to[r.device_id] = max(receipted_to.get(r.device_id, -1), r.last_seq)
                self._db.executemany(
                    "UPDATE devices SET receipted_seq = max(coalesce(receipted_seq, -1), ?), receipted_ms = ? "
                    "WHERE device_id = ?", ((last, now_ms, device_id) for device_id, last in receipted_to.items()))
        return deleted

    def receipted_seqs(self) -> dict[str, int]:
        """Each device's highest receipted seq (devices with none left out)."""
        with self._errors():
            return dict(self._db.execute(
                "SELECT device_id, receipted_seq FROM devices WHERE receipted_seq IS NOT NULL").fetchall())

    def evicted_ranges(self, device_id: str) -> list[SeqRange]:
        """Every range of the device's envelopes that drop_oldest evicted, oldest first."""
        with self._errors():
            rows = self._db.execute("SELECT first_seq, last_seq FROM evictions WHERE device_id = ? "
                                    "ORDER BY id", (device_id,)).fetchall()
        return [SeqRange(device_id, first, last) for first, last in rows]

    def alarms(self, device_id: str | None = None) -> list[Alarm]:
        """Standing alarms, of one device or (device_id None) of all."""
        which = (device_id, device_id)
        with self._errors():
            alarms = [
                Alarm(AlarmCode.OUTBOX_EVICTED, dev, count, first_ms, last_ms, self._latest_ranges(dev))
                for dev, count, first_ms, last_ms in self._db.execute(
                    "SELECT device_id, sum(last_seq - first_seq + 1), min(first_ms), max(last_ms) "
                    "FROM evictions WHERE ? IS NULL OR device_id = ? GROUP BY device_id ORDER BY device_id",
                    which).fetchall()
            ]
            alarms += [Alarm(AlarmCode.OUTBOX_REFUSED, *row) for row in self._db.execute(
                "SELECT device_id, intervals, first_ms, last_ms FROM refusals "
                "WHERE ? IS NULL OR device_id = ? ORDER BY device_id", which)]
        return alarms

    def _latest_ranges(self, device_id: str) -> tuple[tuple[int, int], ...]:
        rows = self._db.execute("SELECT first_seq, last_seq FROM evictions WHERE device_id = ? "
                                "ORDER BY id DESC LIMIT ?", (device_id, ALARM_RANGES)).fetchall()
        return tuple((first, last) for first, last in reversed(rows))

    def status(self) -> OutboxStatus:
        """Counts for `mrv edge status`; cheap, and safe while the agent runs."""
        with self._errors():
            devices = tuple(DeviceStatus(*row) for row in self._db.execute(
                "SELECT device_id, next_seq, queued, queued_bytes, published, appended_ms, receipted_seq, "
                "receipted_ms FROM devices ORDER BY device_id"))
            used = self._used_bytes()
        return OutboxStatus(self.path, self.max_bytes, self.policy, used, devices, tuple(self.alarms()))
