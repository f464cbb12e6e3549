"""The PostgreSQL log store against the in-memory reference log: roots and proofs agree."""

from __future__ import annotations

import psycopg
import pytest

from anchoring import CompactRange, MemoryLog, MissingNode, leaf_hash, verify_consistency, verify_inclusion
from anchoring.store import (
    StoredCheckpoint,
    append_leaves,
    checkpoint_at,
    consistency_proof,
    inclusion_proof,
    insert_checkpoint,
    latest_checkpoint,
    load_range,
    log_size,
    root_at,
)
from tests.anchoring.pg_log import insert_envelopes, new_device

pytestmark = pytest.mark.usefixtures("pg_conninfo")


def _fill(conninfo: str, chunks: list[int]) -> tuple[MemoryLog, list[int]]:
    device = new_device(conninfo)
    reference = MemoryLog()
    ids: list[int] = []
    with psycopg.connect(conninfo) as conn:
        tree = CompactRange()
        for chunk in chunks:
            with conn.transaction():
                new_ids = insert_envelopes(conn, device, chunk)
            raws = [bytes(r[0]) for r in conn.execute(
                "SELECT raw FROM envelopes WHERE id = ANY(%s) ORDER BY id", [new_ids]).fetchall()]
            with conn.transaction():
                tree = append_leaves(conn, tree, new_ids, [leaf_hash(r) for r in raws])
            reference.extend([leaf_hash(r) for r in raws])
            ids += new_ids
            assert tree.root() == reference.root()
    return reference, ids


def test_roots_and_proofs_match_the_reference(pg_conninfo: str) -> None:
    reference, ids = _fill(pg_conninfo, [1, 2, 5, 1, 8, 3])
    n = reference.size
    with psycopg.connect(pg_conninfo) as conn:
        assert log_size(conn) == n
        restored = load_range(conn)
        assert restored.size == n and restored.root() == reference.root()
        for size in range(1, n + 1):
            root = root_at(conn, size)
            assert root == reference.root(size)
            for index in range(size):
                proof = inclusion_proof(conn, index, size)
                assert proof == reference.inclusion_proof(index, size)
                verify_inclusion(index, size, reference.node((0, index)), proof, root)
            for size1 in range(1, size + 1):
                proof = consistency_proof(conn, size1, size)
                assert proof == reference.consistency_proof(size1, size)
                verify_consistency(size1, size, proof, reference.root(size1), root)
        row = conn.execute("SELECT leaf_index, leaf_hash FROM log_leaves WHERE envelope_id = %s", [ids[4]]).fetchone()
        assert row is not None and (row[0], bytes(row[1])) == (4, reference.node((0, 4)))


def test_a_missing_node_is_reported(pg_conninfo: str) -> None:
    _fill(pg_conninfo, [4])
    with psycopg.connect(pg_conninfo) as conn:
        conn.execute("DELETE FROM log_nodes WHERE level = 1 AND node_index = 0")
        with pytest.raises(MissingNode):
            inclusion_proof(conn, 3, 4)


def test_a_leaf_is_stored_once(pg_conninfo: str) -> None:
    _, ids = _fill(pg_conninfo, [2])
    with psycopg.connect(pg_conninfo) as conn:
        tree = load_range(conn)
        with pytest.raises(psycopg.errors.UniqueViolation):
            append_leaves(conn, tree, [ids[0]], [b"\x00" * 32])


def test_checkpoint_rows_round_trip(pg_conninfo: str) -> None:
    _fill(pg_conninfo, [3])
    stored = StoredCheckpoint(3, b"\x07" * 32, "origin\n3\nroot\n\n\u2014 sig\n".encode())
    with psycopg.connect(pg_conninfo) as conn:
        assert latest_checkpoint(conn) is None
        insert_checkpoint(conn, stored)
        assert latest_checkpoint(conn) == stored == checkpoint_at(conn, 3)
        assert checkpoint_at(conn, 2) is None


def test_anchor_status_moves_only_forward(pg_conninfo: str) -> None:
    _fill(pg_conninfo, [1])
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        insert_checkpoint(conn, StoredCheckpoint(1, b"\x01" * 32, b"note"))
        conn.execute("INSERT INTO anchors (checkpoint_size, ledger) VALUES (1, 'local')")
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("UPDATE anchors SET status = 'confirmed', receipt = '{}'")
        conn.execute("UPDATE anchors SET status = 'anchored', receipt = '{}'")
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("UPDATE anchors SET status = 'signed', receipt = NULL")
        conn.execute("UPDATE anchors SET status = 'confirmed'")
