"""Whole-log invariants checked from the database: what R10 asks after any crash or race."""

from __future__ import annotations

import psycopg

from anchoring import Verifier, leaf_hash, open_checkpoint, verify_consistency
from anchoring.store import consistency_proof, log_size, root_at


def check_log(conninfo: str, verifier: Verifier, origin: str) -> int:
    """Assert: leaves are 0..n-1, each the leaf hash of its envelope, no envelope twice; every
    checkpoint is signed, matches the stored tree, and extends the one before. Returns n."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        size = log_size(conn)
        leaves = conn.execute("SELECT l.leaf_index, l.leaf_hash, e.raw FROM log_leaves l "
                              "JOIN envelopes e ON e.id = l.envelope_id ORDER BY l.leaf_index").fetchall()
        assert [int(i) for i, _, _ in leaves] == list(range(size))
        assert all(bytes(h) == leaf_hash(bytes(raw)) for _, h, raw in leaves)
        distinct = conn.execute("SELECT count(DISTINCT envelope_id) FROM log_leaves").fetchone()
        assert distinct == (size,)
        previous = None
        for stored_size, root, note in conn.execute("SELECT size, root, note FROM checkpoints ORDER BY size"):
            checkpoint = open_checkpoint(note.encode(), verifier, origin=origin)
            assert (checkpoint.size, checkpoint.root_hash) == (stored_size, bytes(root))
            assert root_at(conn, stored_size) == checkpoint.root_hash
            if previous is not None:
                proof = consistency_proof(conn, previous.size, checkpoint.size)
                verify_consistency(previous.size, checkpoint.size, proof, previous.root_hash,
                                   checkpoint.root_hash)
            previous = checkpoint
        return size
