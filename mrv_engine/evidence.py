"""The Merkle-log checkpoint covering every envelope a report used: the one place where reports meet
`anchoring`, optional at run time. Without the anchoring package, or before the log covers the envelopes,
the report says so instead of naming a checkpoint. Given the log's verifier key, the evidence bundle of
those envelopes comes too (`anchoring.evidence.build_bundle`), for `mrv verify`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from mrv_engine.series import I64

_NO_KEY = ("no evidence bundle written: give the log's verifier key (--log-vkey, as `mrv anchor keygen` printed "
           "it) to write one")


@dataclass(frozen=True)
class Bundled:
    data: bytes  # the encoded `anchoring.bundle.Bundle`
    envelopes: int
    checkpoint_size: int  # the checkpoint the envelopes are proved against


@dataclass(frozen=True)
class Evidence:
    checkpoint: dict[str, Any] | None  # {"size", "root", "note"} of a checkpoint covering every envelope
    notes: tuple[str, ...]
    bundle: Bundled | None = None
    envelope_hashes: Sequence[str] | None = None  # of every envelope the report used, when already known


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def id_runs(ids: I64) -> tuple[I64, I64]:
    """Sorted distinct `ids` as runs of consecutive ids: first and last of each (envelopes of a device
    come in long runs, so a query over runs is much smaller than one over ids)."""
    if not ids.size:
        return ids, ids
    breaks = np.flatnonzero(np.diff(ids) != 1)
    return ids[np.concatenate(([0], breaks + 1))], ids[np.concatenate((breaks, [ids.size - 1]))]


def attach_checkpoint(conn: psycopg.Connection, envelope_ids: I64, log_vkey: str | None = None) -> Evidence:
    """The latest checkpoint if it covers every envelope in `envelope_ids` (sorted, distinct): each
    envelope's leaf index is below the checkpoint's tree size. With `log_vkey` (the log's verifier key),
    the evidence bundle of those envelopes too; ValueError if the key does not open the checkpoints."""
    if not _available("anchoring.store"):
        return Evidence(None, ("anchoring is not installed: no checkpoint named",))
    store = importlib.import_module("anchoring.store")
    first, last = id_runs(envelope_ids)
    row = conn.execute("SELECT count(*), max(l.leaf_index) FROM unnest(%s::int8[], %s::int8[]) AS r(lo, hi) "
                       "JOIN log_leaves l ON l.envelope_id BETWEEN r.lo AND r.hi",
                       [first.tolist(), last.tolist()]).fetchone()
    logged, last_leaf = (0, None) if row is None else (int(row[0]), row[1])
    uncovered = _NO_KEY if log_vkey is None else "no evidence bundle written: no checkpoint covers every envelope"
    if logged < envelope_ids.size:
        return Evidence(None, (f"{envelope_ids.size - logged} of {envelope_ids.size} envelopes are not in the "
                               "Merkle log yet: no checkpoint covers this report", uncovered))
    checkpoint = store.latest_checkpoint(conn)
    if checkpoint is None or (last_leaf is not None and checkpoint.size <= last_leaf):
        return Evidence(None, ("no signed checkpoint covers the envelopes yet", uncovered))
    named = {"size": checkpoint.size, "root": checkpoint.root.hex(), "note": checkpoint.note.decode()}
    note = f"checkpoint of tree size {checkpoint.size} covers every envelope used"
    if log_vkey is None:
        return Evidence(named, (note, _NO_KEY))
    if not envelope_ids.size:
        return Evidence(named, (note, "no evidence bundle written: the report used no envelopes"))
    return Evidence(named, (note,), _bundle(conn, envelope_ids, log_vkey))


def _bundle(conn: psycopg.Connection, envelope_ids: I64, log_vkey: str) -> Bundled:
    errors = importlib.import_module("anchoring.errors")
    note = importlib.import_module("anchoring.note")
    evidence = importlib.import_module("anchoring.evidence")
    try:
        bundle = evidence.build_bundle(conn, envelope_ids.tolist(), note.Verifier.from_vkey(log_vkey))
    except errors.AnchoringError as e:
        raise ValueError(f"no evidence bundle with this --log-vkey: {e}") from e
    return Bundled(bundle.encode(), len(bundle.envelopes), bundle.envelopes[0].checkpoint_size)
