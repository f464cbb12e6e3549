"""Evidence bundles built from the database (the I/O shell around `anchoring.bundle`)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC

import psycopg

from anchoring.bundle import Bundle, BundleCheckpoint, BundleEnvelope, ConsistencyLink, DeviceKey
from anchoring.checkpoint import open_checkpoint
from anchoring.errors import NotLogged
from anchoring.ledger import AnchorReceipt
from anchoring.note import Verifier
from anchoring.store import StoredCheckpoint, checkpoint_at, consistency_proof, inclusion_proof, latest_checkpoint


def _anchored_checkpoint(conn: psycopg.Connection, size: int) -> StoredCheckpoint | None:
    """The smallest checkpoint of at least `size` leaves that a ledger recorded."""
    row = conn.execute("SELECT min(checkpoint_size) FROM anchors WHERE checkpoint_size >= %s "
                       "AND status IN ('anchored', 'confirmed')", [size]).fetchone()
    return None if row is None or row[0] is None else checkpoint_at(conn, int(row[0]))


def _receipts(conn: psycopg.Connection, size: int) -> tuple[AnchorReceipt, ...]:
    rows = conn.execute("SELECT receipt FROM anchors WHERE checkpoint_size = %s AND receipt IS NOT NULL "
                        "ORDER BY ledger", [size]).fetchall()
    return tuple(AnchorReceipt.from_json(r[0]) for r in rows)


def build_bundle(conn: psycopg.Connection, envelope_ids: Sequence[int], log_verifier: Verifier) -> Bundle:
    """The evidence bundle of these envelopes (e.g. those a report used; one for selective disclosure).

    Each envelope is proved against the smallest anchored checkpoint that covers them all, or the
    latest checkpoint if none is anchored yet; the latest checkpoint is added, with a consistency
    proof, when it is larger. The keys are the device keys that signed them, with their windows; each
    envelope carries its arrival time (`received_at`, in UTC) so that the key can be checked then too.
    The log's checkpoints are verified with `log_verifier` before they go in; `NotLogged` if an
    envelope is unknown, not logged, or not covered by a checkpoint yet.
    """
    ids = sorted(set(envelope_ids))
    rows = conn.execute(
        "SELECT e.id, e.device_id, e.seq, e.raw, e.kid, l.leaf_index, e.received_at FROM envelopes e "
        "LEFT JOIN log_leaves l ON l.envelope_id = e.id WHERE e.id = ANY(%s) ORDER BY l.leaf_index", [ids],
    ).fetchall()
    unlogged = sorted(set(ids) - {int(r[0]) for r in rows if r[5] is not None})
    if not ids or unlogged:
        raise NotLogged(f"envelope ids {unlogged or 'none given'}")
    need = max(int(r[5]) for r in rows) + 1
    latest = latest_checkpoint(conn)
    if latest is None or latest.size < need:
        raise NotLogged(f"no checkpoint covers leaf {need - 1} yet")
    chosen = _anchored_checkpoint(conn, need) or latest
    stored = [chosen] if chosen.size == latest.size else [chosen, latest]
    origin = stored[0].note.split(b"\n", 1)[0].decode()
    for checkpoint in stored:
        open_checkpoint(checkpoint.note, log_verifier, origin=origin)
    links = tuple(ConsistencyLink(a.size, b.size, tuple(consistency_proof(conn, a.size, b.size)))
                  for a, b in itertools.pairwise(stored))
    key_rows = conn.execute("SELECT device_id, kid, public_key, valid_from, valid_until, revoked_at "
                            "FROM device_keys WHERE kid = ANY(%s) ORDER BY device_id, valid_from",
                            [sorted({bytes(r[4]) for r in rows})]).fetchall()
    keys = tuple(DeviceKey(d, bytes(kid), bytes(pk), f, u, rv) for d, kid, pk, f, u, rv in key_rows)
    envelopes = tuple(
        BundleEnvelope(device_id, int(seq), bytes(raw), int(index), chosen.size,
                       tuple(inclusion_proof(conn, int(index), chosen.size)), received_at.astimezone(UTC))
        for _, device_id, seq, raw, _, index, received_at in rows)
    return Bundle(origin, log_verifier.vkey,
                  tuple(BundleCheckpoint(c.note, _receipts(conn, c.size)) for c in stored), links, keys, envelopes)
