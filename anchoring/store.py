"""The Merkle log in PostgreSQL: a thin shell that stores what `anchoring.compact` computes.

Tables (ingest/migrations/0004_merkle_log.sql): `log_leaves` (leaf index -> envelope id, leaf
hash), `log_tiles` (hash tiles: tile (level, index) holds nodes index * 16, ... of tree level
4 * level), `checkpoints` (signed notes by tree size) and `anchors`. A proof is planned by
`anchoring.proof`; the tiles behind its O(log n) nodes are read in ONE indexed query and every node
is hashed from its tile. Functions take a psycopg connection and leave transaction control to the
caller.

Why tiles: with one row per node, a proof in a 10 M-leaf log read 30 rows scattered over a 2.2 GB
table: ~150 buffer pages, ~8 of them missing PostgreSQL's 256 MB of buffers and read from the OS,
whose file cache does not keep them (this VM pages out file pages untouched for 30 s), and those
reads made the p99. Tiles cover four tree levels per row: 10 rows (6 along the path, 4 on the right
edge), ~37 pages and ~1 read per proof, in a 410 MB table (bench/proof.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import psycopg

from anchoring.compact import CompactRange, NodeId, range_nodes, range_root
from anchoring.errors import LogInconsistent, MissingNode
from anchoring.proof import consistency_plan, inclusion_plan
from anchoring.rfc6962 import EMPTY_ROOT, HASH_SIZE, node_hashes_packed

TILE_HEIGHT: Final = 4
"""A tile spans this many tree levels: it holds up to 2**4 = 16 hashes (512 bytes, inline in its row).
Taller tiles mean fewer rows but more hashing per proof; 4 gave the lowest p50 and p99 among 3, 4
and 5 in bench/proof.py (10 rows and ~75 SHA-256 calls per proof at 10 M leaves)."""
TILE_WIDTH: Final = 1 << TILE_HEIGHT
TILES_QUERY: Final = ("SELECT t.level, t.tile_index, t.hashes FROM log_tiles t "
                      "JOIN unnest(%s::smallint[], %s::bigint[]) AS q (level, tile_index) "
                      "ON t.level = q.level AND t.tile_index = q.tile_index")
"""The tiles (levels, indexes) in one indexed query."""


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


def node_tile(node: NodeId) -> tuple[tuple[int, int], int, int]:
    """(tile level, tile index), and the first slot and the number of slots of `node`'s subtree in it."""
    tile_level, height = divmod(node.level, TILE_HEIGHT)
    first = node.index << height  # on tree level tile_level * TILE_HEIGHT
    return (tile_level, first >> TILE_HEIGHT), first % TILE_WIDTH, 1 << height


def _subtree_hash(tile: bytes, first: int, count: int) -> bytes:
    """The root of the perfect subtree over the `count` (a power of two) hashes from slot `first` of `tile`."""
    if count == 1:
        return tile[first * HASH_SIZE : (first + 1) * HASH_SIZE]
    hashes = node_hashes_packed(tile[first * HASH_SIZE : (first + count) * HASH_SIZE])
    while len(hashes) > 1:
        hashes = node_hashes_packed(b"".join(hashes))
    return hashes[0]


def fetch_nodes(conn: psycopg.Connection, nodes: Sequence[NodeId]) -> dict[NodeId, bytes]:
    """The hashes of `nodes` (those not stored are left out), from their tiles read in one query."""
    if not nodes:
        return {}
    wanted = sorted({node_tile(node)[0] for node in nodes})
    rows = conn.execute(TILES_QUERY, [[level for level, _ in wanted], [index for _, index in wanted]],
                        binary=True).fetchall()  # bytea as raw bytes, not hex text
    tiles = {(level, index): bytes(hashes) for level, index, hashes in rows}
    found = {}
    for node in nodes:
        tile_id, first, count = node_tile(node)
        tile = tiles.get(tile_id, b"")
        if len(tile) >= (first + count) * HASH_SIZE:
            found[node] = _subtree_hash(tile, first, count)
    return found


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


def tile_slices(level: int, first: int, hashes: Sequence[bytes]) -> Iterator[tuple[int, int, int, bytes]]:
    """Where the run of new nodes `first`, ... on tree `level` goes: (tile level, tile index, first
    slot, hashes) per tile; nothing unless `level` is a tile level."""
    if level % TILE_HEIGHT:
        return
    done = 0
    while done < len(hashes):
        index = first + done
        slot = index % TILE_WIDTH
        take = min(TILE_WIDTH - slot, len(hashes) - done)
        yield level // TILE_HEIGHT, index // TILE_WIDTH, slot, b"".join(hashes[done : done + take])
        done += take


def append_nodes(conn: psycopg.Connection, tree: CompactRange, leaf_hashes: Sequence[bytes]) -> CompactRange:
    """Store the tiles of leaves `tree.size`, ... and of every node they complete.

    Returns the extended range; `tree` itself is unchanged. New tiles are inserted; a tile that
    already holds earlier nodes of its level (the partial right-edge tile) is extended, and only if
    it ends exactly where the new nodes begin, so a writer with a stale range fails
    (`LogInconsistent`) instead of corrupting a tile.
    """
    new: list[tuple[int, int, bytes]] = []
    extended: list[tuple[int, int, int, bytes]] = []

    def sink(level: int, first: int, hashes: Sequence[bytes]) -> None:
        for tile_level, index, slot, data in tile_slices(level, first, hashes):
            if slot:
                extended.append((tile_level, index, slot, data))
            else:
                new.append((tile_level, index, data))

    grown = CompactRange(tree.size, tree.hashes)
    grown.extend(leaf_hashes, sink)
    with conn.cursor() as cur:
        if extended:
            levels, indexes, slots, tails = zip(*extended, strict=True)
            cur.execute(
                "UPDATE log_tiles t SET hashes = t.hashes || q.tail FROM unnest(%s::smallint[], %s::bigint[], "
                "%s::int[], %s::bytea[]) AS q (level, tile_index, slot, tail) WHERE t.level = q.level "
                "AND t.tile_index = q.tile_index AND length(t.hashes) = q.slot * %s",
                [list(levels), list(indexes), list(slots), list(tails), HASH_SIZE])
            if cur.rowcount != len(extended):
                raise LogInconsistent(f"a partial tile does not end at the log's size {tree.size}")
        with cur.copy("COPY log_tiles (level, tile_index, hashes) FROM STDIN") as copy:
            for row in new:
                copy.write_row(row)
    return grown


def append_leaves(conn: psycopg.Connection, tree: CompactRange, envelope_ids: Sequence[int],
                  leaf_hashes: Sequence[bytes]) -> CompactRange:
    """Store leaves `tree.size`, ... for these envelopes, their tiles and every node they complete.

    Returns the extended range; `tree` itself is unchanged, so a caller whose transaction rolls
    back still holds the range that matches the database.
    """
    if len(envelope_ids) != len(leaf_hashes):
        raise ValueError("one leaf hash per envelope id")
    with conn.cursor() as cur, cur.copy("COPY log_leaves (leaf_index, envelope_id, leaf_hash) FROM STDIN") as copy:
        for i, (envelope_id, digest) in enumerate(zip(envelope_ids, leaf_hashes, strict=True)):
            copy.write_row((tree.size + i, envelope_id, digest))
    return append_nodes(conn, tree, leaf_hashes)


def latest_checkpoint(conn: psycopg.Connection) -> StoredCheckpoint | None:
    row = conn.execute("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), row[2].encode())


def checkpoint_at(conn: psycopg.Connection, size: int) -> StoredCheckpoint | None:
    row = conn.execute("SELECT size, root, note FROM checkpoints WHERE size = %s", [size]).fetchone()
    return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), row[2].encode())


def insert_checkpoint(conn: psycopg.Connection, checkpoint: StoredCheckpoint) -> None:
    conn.execute("INSERT INTO checkpoints (size, root, note) VALUES (%s, %s, %s)",
                 [checkpoint.size, checkpoint.root, checkpoint.note.decode()])

