"""The Merkle log in PostgreSQL: a thin shell that stores what `anchoring.compact` computes.

Tables (ingest/migrations/0004_merkle_log.sql): `log_leaves` (leaf index -> envelope id, leaf
hash), `log_nodes` (every perfect-subtree node by (level, node_index), leaves at level 0),
`checkpoints` (signed notes by tree size) and `anchors`. A proof is planned by `anchoring.proof`
and its O(log n) nodes are read in ONE indexed query. Functions take a psycopg connection and
leave transaction control to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from anchoring.compact import CompactRange, NodeId, range_nodes, range_root
from anchoring.errors import MissingNode
from anchoring.proof import consistency_plan, inclusion_plan
from anchoring.rfc6962 import EMPTY_ROOT


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: `note` is the signed note's exact bytes."""

    size: int
    root: bytes
    note: bytes


def log_size(conn: psycopg.Connection) -> int:
    """The number of leaves stored."""
    row = conn.execute("SELECT coalesce(max(leaf_index) + 1, 0) FROM log_leaves").fetchone()
    assert row is not None
    return int(row[0])


def fetch_nodes(conn: psycopg.Connection, nodes: Sequence[NodeId]) -> dict[NodeId, bytes]:
    """The stored hashes of `nodes` (absent ones are left out), in one query."""
    if not nodes:
        return {}
    rows = conn.execute(
        "SELECT n.level, n.node_index, n.hash FROM log_nodes n "
        "JOIN unnest(%s::smallint[], %s::bigint[]) AS q (level, node_index) "
        "ON n.level = q.level AND n.node_index = q.node_index",
        [[n.level for n in nodes], [n.index for n in nodes]],
    ).fetchall()
    return {NodeId(level, index): bytes(digest) for level, index, digest in rows}


def _range_hashes(conn: psycopg.Connection, size: int) -> list[bytes]:
    """The hashes of `range_nodes(0, size)`: O(log n) nodes in one query."""
    nodes = range_nodes(0, size)
    found = fetch_nodes(conn, nodes)
    missing = [n for n in nodes if n not in found]
    if missing:
        raise MissingNode(", ".join(f"level {n.level} index {n.index}" for n in missing))
    return [found[n] for n in nodes]


def root_at(conn: psycopg.Connection, size: int) -> bytes:
    """The root hash of the log's first `size` leaves."""
    return range_root(_range_hashes(conn, size)) if size else EMPTY_ROOT


def load_range(conn: psycopg.Connection) -> CompactRange:
    """The compact range of the whole stored log."""
    size = log_size(conn)
    return CompactRange(size, _range_hashes(conn, size))


def inclusion_proof(conn: psycopg.Connection, index: int, size: int) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves."""
    plan = inclusion_plan(index, size)
    return plan.assemble(fetch_nodes(conn, plan.nodes))


def consistency_proof(conn: psycopg.Connection, size1: int, size2: int) -> list[bytes]:
    """The RFC 9162 consistency proof from the tree of `size1` leaves to that of `size2`."""
    plan = consistency_plan(size1, size2)
    return plan.assemble(fetch_nodes(conn, plan.nodes))


def append_leaves(conn: psycopg.Connection, tree: CompactRange, envelope_ids: Sequence[int],
                  leaf_hashes: Sequence[bytes]) -> CompactRange:
    """Store leaves `tree.size`, ... for these envelopes and every node they complete.

    Returns the extended range; `tree` itself is unchanged, so a caller whose transaction rolls
    back still holds the range that matches the database.
    """
    if len(envelope_ids) != len(leaf_hashes):
        raise ValueError("one leaf hash per envelope id")
    grown = CompactRange(tree.size, tree.hashes)
    rows: list[tuple[int, int, bytes]] = []
    grown.extend(leaf_hashes, lambda level, first, hashes: rows.extend(
        (level, first + i, h) for i, h in enumerate(hashes)))
    with conn.cursor() as cur:
        with cur.copy("COPY log_leaves (leaf_index, envelope_id, leaf_hash) FROM STDIN") as copy:
            for i, (envelope_id, digest) in enumerate(zip(envelope_ids, leaf_hashes, strict=True)):
                copy.write_row((tree.size + i, envelope_id, digest))
        with cur.copy("COPY log_nodes (level, node_index, hash) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return grown


def latest_checkpoint(conn: psycopg.Connection) -> StoredCheckpoint | None:
    row = conn.execute("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), row[2].encode())


def checkpoint_at(conn: psycopg.Connection, size: int) -> StoredCheckpoint | None:
    row = conn.execute("SELECT size, root, note FROM checkpoints WHERE size = %s", [size]).fetchone()
    return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), row[2].encode())


def insert_checkpoint(conn: psycopg.Connection, checkpoint: StoredCheckpoint) -> None:
    conn.execute("INSERT INTO checkpoints (size, root, note) VALUES (%s, %s, %s)",
                 [checkpoint.size, checkpoint.root, checkpoint.note.decode()])

