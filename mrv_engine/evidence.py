"""The Merkle-log checkpoint covering every envelope a report used: the one place where reports meet
`anchoring`, optional at run time. Without the anchoring package, or before the log covers the envelopes,
the report says so instead of naming a checkpoint. (The evidence bundle is
`anchoring.evidence.build_bundle(conn, envelope_ids, log_verifier)`; it needs the log's verifier key,
which the report command does not take yet.)
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from mrv_engine.series import I64


@dataclass(frozen=True)
class Evidence:
    checkpoint: dict[str, Any] | None  # {"size", "root", "note"} of a checkpoint covering every envelope
    note: str


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


def attach_checkpoint(conn: psycopg.Connection, envelope_ids: I64) -> Evidence:
    """The latest checkpoint if it covers every envelope in `envelope_ids` (sorted, distinct): each
    envelope's leaf index is below the checkpoint's tree size."""
    if not _available("anchoring.store"):
        return Evidence(None, "anchoring is not installed: no checkpoint named")
    store = importlib.import_module("anchoring.store")
    first, last = id_runs(envelope_ids)
    row = conn.execute("SELECT count(*), max(l.leaf_index) FROM unnest(%s::int8[], %s::int8[]) AS r(lo, hi) "
                       "JOIN log_leaves l ON l.envelope_id BETWEEN r.lo AND r.hi",
                       [first.tolist(), last.tolist()]).fetchone()
    logged, last_leaf = (0, None) if row is None else (int(row[0]), row[1])
    if logged < envelope_ids.size:
        return Evidence(None, f"{envelope_ids.size - logged} of {envelope_ids.size} envelopes are not in the "
                              "Merkle log yet: no checkpoint covers this report")
    checkpoint = store.latest_checkpoint(conn)
    if checkpoint is None or (last_leaf is not None and checkpoint.size <= last_leaf):
        return Evidence(None, "no signed checkpoint covers the envelopes yet")
    named = {"size": checkpoint.size, "root": checkpoint.root.hex(), "note": checkpoint.note.decode()}
    return Evidence(named, f"checkpoint of tree size {checkpoint.size} covers every envelope used")
