"""The PostgreSQL log store against the in-memory reference log: roots and proofs agree."""

from __future__ import annotations

import random

import psycopg
import pytest

from anchoring import CompactRange, MemoryLog, MissingNode, leaf_hash, verify_consistency, verify_inclusion
from anchoring.errors import LogInconsistent
from anchoring.store import (
    TILE_WIDTH,
    StoredCheckpoint,
    append_leaves,
    append_nodes,
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


def test_proofs_across_tiles_and_tile_levels_match_the_reference(pg_conninfo: str) -> None:
    # Batches that start and end inside tiles and cross them. 4,301 leaves in tiles of 16 make 269
    # tiles of tree level 0, 17 of level 4, 1 of level 8 (filled by updates) and 1 of level 12.
    rng = random.Random(5)
    reference = MemoryLog()
    with psycopg.connect(pg_conninfo) as conn:
        tree = CompactRange()
        for chunk in (1, 15, 1, 17, 64, 900, 3, 3300):
            hashes = [rng.randbytes(32) for _ in range(chunk)]
            with conn.transaction():
                tree = append_nodes(conn, tree, hashes)
            reference.extend(hashes)
        tiles = conn.execute("SELECT level, count(*), min(length(hashes)) / 32 FROM log_tiles GROUP BY level "
                             "ORDER BY level").fetchall()
        assert tiles == [(0, 269, 13), (1, 17, 12), (2, 1, 16), (3, 1, 1)]
        n = reference.size
        for size in [*range(1, 70), *rng.sample(range(70, n + 1), 60), n]:
            root = root_at(conn, size)
            assert root == reference.root(size)
            for index in {0, size - 1, *rng.sample(range(size), min(size, 5))}:
                assert inclusion_proof(conn, index, size) == reference.inclusion_proof(index, size)
            size1 = rng.randrange(1, size + 1)
            assert consistency_proof(conn, size1, size) == reference.consistency_proof(size1, size)


def test_a_missing_node_is_reported(pg_conninfo: str) -> None:
    _fill(pg_conninfo, [4])
    with psycopg.connect(pg_conninfo) as conn:
        conn.execute("UPDATE log_tiles SET hashes = substring(hashes FROM 1 FOR 64)")  # leaves 0 and 1 only
        assert inclusion_proof(conn, 0, 2)
        with pytest.raises(MissingNode, match="level 0 index 2"):
            inclusion_proof(conn, 3, 4)


def test_a_writer_with_a_stale_range_cannot_change_a_tile(pg_conninfo: str) -> None:
    hashes = [bytes([i]) * 32 for i in range(TILE_WIDTH + 8)]
    with psycopg.connect(pg_conninfo) as conn:
        stale = CompactRange()
        stale.extend(hashes[:TILE_WIDTH + 3])
        with conn.transaction():
            append_nodes(conn, CompactRange(), hashes)
        with pytest.raises(LogInconsistent), conn.transaction():
            append_nodes(conn, stale, [b"\xff" * 32])
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            append_nodes(conn, CompactRange(), hashes[:1])
        stored = conn.execute("SELECT hashes FROM log_tiles WHERE level = 0 AND tile_index = 1").fetchone()
        assert stored is not None and bytes(stored[0]) == b"".join(hashes[TILE_WIDTH:])


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
