"""The sequencer: appends newly committed envelopes to the log, signs checkpoints, anchors them.

One leader per database, by a session advisory lock on a connection of its own; others wait.
Each step is one transaction: the next envelopes in commit order (txid below the snapshot's xmin,
ordered by (txid, id); see ingest/migrations/0002_envelopes.sql), their leaves and nodes, and a
checkpoint signed only after a consistency proof from the previous stored checkpoint verified.
`log_leaves.envelope_id` is UNIQUE and every row is keyed, so even two writers that both believed
they led could not log an envelope twice or fork the log: the second one's transaction fails.

Anchoring is a second, idempotent step: an `anchors` row per (checkpoint, ledger) moves
signed -> anchored -> confirmed, and a checkpoint is published only if `Ledger.lookup` does not
already find it, so a crash between publishing and recording never anchors it twice.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import psycopg

from anchoring.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from anchoring.compact import CompactRange
from anchoring.errors import (
    CheckpointError,
    LedgerError,
    LogInconsistent,
    MissingNode,
    NoteError,
    ProofError,
    ReceiptInvalid,
)
from anchoring.ledger import AnchorReceipt, Ledger
from anchoring.note import Signer
from anchoring.rfc6962 import leaf_hashes
from anchoring.store import (
    StoredCheckpoint,
    append_leaves,
    checkpoint_at,
    consistency_proof,
    insert_checkpoint,
    latest_checkpoint,
    load_range,
    log_size,
)
from anchoring.verify import verify_consistency
from mrv_common.logs import log_event

log = logging.getLogger(__name__)

LEADER_LOCK_KEY: Final = 0x6D72765F6C6F6721  # pg_advisory_lock key of the sequencer ("mrv_log!")


@dataclass(frozen=True)
class SequencerConfig:
    """`anchor_every_seconds` / `anchor_every_leaves`: anchor the latest checkpoint when either
    this much time or this many leaves have passed since the last anchored one."""

    conninfo: str
    signer: Signer
    origin: str
    ledger_kind: str
    batch: int = 10_000
    poll_seconds: float = 1.0
    anchor_every_seconds: float = 60.0
    anchor_every_leaves: int = 10_000

    def __post_init__(self) -> None:
        if self.batch < 1 or self.poll_seconds <= 0 or self.anchor_every_leaves < 1:
            raise ValueError("batch, poll interval and anchor leaves must be positive")


def _next_envelopes(conn: psycopg.Connection, size: int, batch: int) -> list[tuple[int, bytes]]:
    """(id, raw) of the next committed envelopes after leaf `size - 1`, in commit order."""
    after = ("0", 0)
    if size:
        row = conn.execute("SELECT e.txid::text, e.id FROM log_leaves l JOIN envelopes e ON e.id = l.envelope_id "
                           "WHERE l.leaf_index = %s", [size - 1]).fetchone()
        if row is None:
            raise LogInconsistent(f"leaf {size - 1} or its envelope is missing")
        after = (row[0], int(row[1]))
    rows = conn.execute(
        "SELECT id, raw FROM envelopes WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) "
        "AND (txid, id) > (%s::xid8, %s) ORDER BY txid, id LIMIT %s", [*after, batch]).fetchall()
    return [(int(i), bytes(raw)) for i, raw in rows]


def sign_consistent(conn: psycopg.Connection, tree: CompactRange, signer: Signer, origin: str) -> StoredCheckpoint:
    """Sign the checkpoint of `tree`, after proving from the stored nodes that it extends the
    last stored checkpoint (whose signature is checked too); `LogInconsistent` otherwise."""
    previous = latest_checkpoint(conn)
    if previous is not None:
        try:
            opened = open_checkpoint(previous.note, signer.verifier, origin=origin)
            if (opened.size, opened.root_hash) != (previous.size, previous.root) or opened.size > tree.size:
                raise LogInconsistent(f"checkpoint row {previous.size} does not match its signed note")
            proof = consistency_proof(conn, opened.size, tree.size)
            verify_consistency(opened.size, tree.size, proof, opened.root_hash, tree.root())
        except (ProofError, NoteError, CheckpointError, MissingNode) as e:
            raise LogInconsistent(f"size {tree.size} does not extend checkpoint {previous.size}: {e}") from e
    root = tree.root()
    note = sign_checkpoint(Checkpoint(origin, tree.size, root), signer)
    return StoredCheckpoint(tree.size, root, note)


def integrate(conn: psycopg.Connection, tree: CompactRange, signer: Signer, origin: str,
              batch: int) -> tuple[CompactRange, StoredCheckpoint | None]:
    """One transaction: log up to `batch` committed envelopes and sign the new checkpoint.

    Returns the grown range and the checkpoint, or `tree` and None when nothing was new.
    """
    with conn.transaction():
        if log_size(conn) != tree.size:
            raise LogInconsistent(f"the log has {log_size(conn)} leaves, the sequencer expected {tree.size}")
        found = _next_envelopes(conn, tree.size, batch)
        if not found:
            return tree, None
        grown = append_leaves(conn, tree, [i for i, _ in found], leaf_hashes(raw for _, raw in found))
        checkpoint = sign_consistent(conn, grown, signer, origin)
        insert_checkpoint(conn, checkpoint)
    return grown, checkpoint


def anchor_due(conn: psycopg.Connection, config: SequencerConfig) -> bool:
    """Whether to run `anchor` now: an anchor awaits confirmation, or the latest checkpoint is due
    (see `SequencerConfig`)."""
    latest = latest_checkpoint(conn)
    if latest is None:
        return False
    row = conn.execute("SELECT max(checkpoint_size), extract(epoch FROM now() - max(created_at)), "
                       "bool_or(status <> 'confirmed') FROM anchors WHERE ledger = %s",
                       [config.ledger_kind]).fetchone()
    assert row is not None
    last_size, age, unconfirmed = row
    if last_size is None or unconfirmed:
        return True
    return latest.size > last_size and (
        latest.size - last_size >= config.anchor_every_leaves or float(age) >= config.anchor_every_seconds)


def anchor(conn: psycopg.Connection, ledger: Ledger, kind: str) -> list[AnchorReceipt]:
    """Choose the latest checkpoint for `ledger`, then publish and confirm every unconfirmed one.

    Returns the receipts of the anchors confirmed by this call.
    """
    latest = latest_checkpoint(conn)
    with conn.transaction():
        if latest is not None:
            conn.execute("INSERT INTO anchors (checkpoint_size, ledger) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         [latest.size, kind])
    pending = conn.execute("SELECT checkpoint_size, status, receipt FROM anchors "
                           "WHERE ledger = %s AND status <> 'confirmed' ORDER BY checkpoint_size",
                           [kind]).fetchall()
    confirmed = []
    for size, status, stored_receipt in pending:
        stored = checkpoint_at(conn, size)
        assert stored is not None  # anchors.checkpoint_size references checkpoints
        if status == "signed":
            receipt = ledger.lookup(stored.note) or ledger.publish(stored.note)
            with conn.transaction():
                conn.execute("UPDATE anchors SET status = 'anchored', receipt = %s, anchored_at = now() "
                             "WHERE checkpoint_size = %s AND ledger = %s AND status = 'signed'",
                             [json.dumps(receipt.to_json()), size, kind])
            log_event(log, logging.INFO, "checkpoint_anchored", size=size, ledger=kind, locator=receipt.locator)
        else:
            receipt = AnchorReceipt.from_json(stored_receipt)
        try:
            ledger.verify_receipt(receipt, stored.note)
        except ReceiptInvalid as e:
            log_event(log, logging.WARNING, "anchor_unconfirmed", size=size, ledger=kind, reason=str(e))
            continue
        with conn.transaction():
            conn.execute("UPDATE anchors SET status = 'confirmed', confirmed_at = now() "
                         "WHERE checkpoint_size = %s AND ledger = %s AND status = 'anchored'", [size, kind])
        confirmed.append(receipt)
    return confirmed


class Sequencer:
    """The sequencer's loop. `open_ledger` is called for each anchoring round, so a ledger that
    another (earlier) leader wrote to is read afresh."""

    def __init__(self, config: SequencerConfig, open_ledger: Callable[[], Ledger]) -> None:
        self.config = config
        self._open_ledger = open_ledger
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def _lead(self, lock_conn: psycopg.Connection) -> bool:
        """Wait for the leader lock; False if stopped first."""
        while not self._stop.is_set():
            row = lock_conn.execute("SELECT pg_try_advisory_lock(%s)", [LEADER_LOCK_KEY]).fetchone()
            if row is not None and row[0]:
                log_event(log, logging.INFO, "sequencer_leader", origin=self.config.origin)
                return True
            self._stop.wait(self.config.poll_seconds)
        return False

    def run(self, *, once: bool = False) -> None:
        """Lead, then integrate and anchor until stopped. `once`: wait for leadership, log every
        committed envelope, anchor the latest checkpoint, return."""
        cfg = self.config
        with psycopg.connect(cfg.conninfo, autocommit=True) as lock_conn, \
                psycopg.connect(cfg.conninfo, autocommit=True) as conn:
            if not self._lead(lock_conn):
                return
            tree = load_range(conn)
            log_event(log, logging.INFO, "sequencer_restored", size=tree.size)
            while not self._stop.is_set():
                lock_conn.execute("SELECT 1")  # fails, and ends the run, if the leader session is gone
                tree, checkpoint = integrate(conn, tree, cfg.signer, cfg.origin, cfg.batch)
                if checkpoint is not None:
                    log_event(log, logging.INFO, "checkpoint_signed", size=checkpoint.size,
                              root=checkpoint.root.hex())
                # Anchor on schedule even while a backlog drains, so steady load cannot starve it.
                if (once and checkpoint is None) or (not once and anchor_due(conn, cfg)):
                    self._anchor(conn)
                if checkpoint is None:
                    if once:
                        return
                    self._stop.wait(cfg.poll_seconds)

    def _anchor(self, conn: psycopg.Connection) -> None:
        try:
            anchor(conn, self._open_ledger(), self.config.ledger_kind)
        except LedgerError as e:
            # The checkpoint stays 'signed' or 'anchored' and is retried next round.
            log_event(log, logging.WARNING, "ledger_failed", ledger=self.config.ledger_kind, reason=str(e))


def log_status(conn: psycopg.Connection) -> dict[str, object]:
    """What `mrv anchor status` prints: log size, latest checkpoint, backlog, anchors by status."""
    latest = latest_checkpoint(conn)
    backlog = conn.execute("SELECT count(*) FROM envelopes e WHERE NOT EXISTS "
                           "(SELECT 1 FROM log_leaves l WHERE l.envelope_id = e.id)").fetchone()
    anchors = conn.execute("SELECT ledger, status, count(*), max(checkpoint_size) FROM anchors "
                           "GROUP BY ledger, status ORDER BY ledger, status").fetchall()
    return {
        "log_size": log_size(conn),
        "checkpoint": None if latest is None else {"size": latest.size, "root": latest.root.hex()},
        "unlogged_envelopes": None if backlog is None else int(backlog[0]),
        "anchors": [{"ledger": k, "status": s, "count": int(n), "max_size": int(m)} for k, s, n, m in anchors],
    }

