"""The sequencer against a real PostgreSQL: commit order, signed consistent checkpoints, anchoring once."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from anchoring import CompactRange, LogInconsistent, Signer, leaf_hash, open_checkpoint
from anchoring.ledger.local import LocalLedger
from anchoring.sequencer import SequencerConfig, anchor, anchor_due, integrate, log_status
from anchoring.store import latest_checkpoint, load_range
from tests.anchoring.log_checks import check_log
from tests.anchoring.pg_log import insert_envelopes, new_device

ORIGIN = "test.example/mrv-log"


@pytest.fixture
def signer() -> Signer:
    return Signer.generate(ORIGIN)


def _leaf_envelopes(conn: psycopg.Connection) -> list[int]:
    return [int(r[0]) for r in conn.execute("SELECT envelope_id FROM log_leaves ORDER BY leaf_index")]


def test_leaves_follow_commit_order(pg_conninfo: str, signer: Signer) -> None:
    first, second = new_device(pg_conninfo, "meter-a"), new_device(pg_conninfo, "meter-b")
    with psycopg.connect(pg_conninfo) as early, psycopg.connect(pg_conninfo) as late, \
            psycopg.connect(pg_conninfo, autocommit=True) as seq:
        early_ids = insert_envelopes(early, first, 3)  # transaction open: its txid is the older one
        late_ids = insert_envelopes(late, second, 2)
        late.commit()
        tree, checkpoint = integrate(seq, CompactRange(), signer, ORIGIN, 100)
        assert checkpoint is None and tree.size == 0  # an older transaction is still running
        early.commit()
        tree, checkpoint = integrate(seq, tree, signer, ORIGIN, 100)
        assert checkpoint is not None and checkpoint.size == 5
        assert _leaf_envelopes(seq) == early_ids + late_ids
        later_ids = insert_envelopes(seq, first, 2)
        tree, _ = integrate(seq, tree, signer, ORIGIN, 1)  # a batch of one
        tree, _ = integrate(seq, tree, signer, ORIGIN, 1)
        assert integrate(seq, tree, signer, ORIGIN, 1) == (tree, None)
        assert _leaf_envelopes(seq) == early_ids + late_ids + later_ids
        raws = {int(i): bytes(r) for i, r in seq.execute("SELECT id, raw FROM envelopes")}
        hashes = [bytes(r[0]) for r in seq.execute("SELECT leaf_hash FROM log_leaves ORDER BY leaf_index")]
        assert hashes == [leaf_hash(raws[i]) for i in _leaf_envelopes(seq)]
        assert load_range(seq).root() == tree.root()
    check_log(pg_conninfo, signer.verifier, ORIGIN)


def test_checkpoints_are_signed_and_consistent(pg_conninfo: str, signer: Signer) -> None:
    device = new_device(pg_conninfo)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        tree = CompactRange()
        for count in (1, 4, 2, 9):
            insert_envelopes(conn, device, count)
            tree, checkpoint = integrate(conn, tree, signer, ORIGIN, 100)
            assert checkpoint is not None
            opened = open_checkpoint(checkpoint.note, signer.verifier, origin=ORIGIN)
            assert (opened.size, opened.root_hash) == (tree.size, tree.root())
    assert check_log(pg_conninfo, signer.verifier, ORIGIN) == 16


def test_refuses_to_sign_a_log_that_does_not_extend_its_checkpoint(pg_conninfo: str, signer: Signer) -> None:
    device = new_device(pg_conninfo)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        insert_envelopes(conn, device, 3)
        tree, _ = integrate(conn, CompactRange(), signer, ORIGIN, 100)
        # Leaf 0 overwritten in its tile, and with it node (1, 0) of the next consistency proof.
        conn.execute("UPDATE log_tiles SET hashes = overlay(hashes PLACING %s FROM 1) "
                     "WHERE level = 0 AND tile_index = 0", [b"\x00" * 32])
        insert_envelopes(conn, device, 2)
        with pytest.raises(LogInconsistent):
            integrate(conn, tree, signer, ORIGIN, 100)
        latest = latest_checkpoint(conn)
        assert latest is not None and latest.size == 3
        with pytest.raises(LogInconsistent):  # the stored checkpoint was signed by another key
            integrate(conn, tree, Signer.generate(ORIGIN), ORIGIN, 100)


def test_a_sequencer_with_a_stale_range_stops(pg_conninfo: str, signer: Signer) -> None:
    device = new_device(pg_conninfo)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        insert_envelopes(conn, device, 2)
        integrate(conn, CompactRange(), signer, ORIGIN, 100)
        with pytest.raises(LogInconsistent):
            integrate(conn, CompactRange(), signer, ORIGIN, 100)


def test_a_checkpoint_is_anchored_once(pg_conninfo: str, signer: Signer, tmp_path: Path) -> None:
    device = new_device(pg_conninfo)
    path = tmp_path / "ledger.jsonl"
    config = SequencerConfig(pg_conninfo, signer, ORIGIN, "local", anchor_every_seconds=3600, anchor_every_leaves=5)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        assert not anchor_due(conn, config)
        insert_envelopes(conn, device, 2)
        tree, first = integrate(conn, CompactRange(), signer, ORIGIN, 100)
        assert first is not None and anchor_due(conn, config)
        # A crash after publishing but before recording: the ledger has it, the row says 'signed'.
        LocalLedger.open(path, create=True).publish(first.note)
        conn.execute("INSERT INTO anchors (checkpoint_size, ledger) VALUES (%s, 'local')", [first.size])
        [receipt] = anchor(conn, LocalLedger.open(path), "local")
        assert len(LocalLedger.open(path)) == 1
        assert receipt.locator.startswith("0:")
        assert anchor(conn, LocalLedger.open(path), "local") == []
        insert_envelopes(conn, device, 2)
        integrate(conn, tree, signer, ORIGIN, 100)
        assert not anchor_due(conn, config)  # 2 new leaves, less than 5, and not an hour yet
        status = log_status(conn)
        assert status["log_size"] == 4 and status["unlogged_envelopes"] == 0
        assert status["anchors"] == [{"ledger": "local", "status": "confirmed", "count": 1, "max_size": 2}]
        row = conn.execute("SELECT receipt FROM anchors").fetchone()
        assert row is not None and json.loads(json.dumps(row[0]))["locator"] == receipt.locator
