"""P4: inclusion proofs for random leaves of a large Merkle log stored in PostgreSQL.

The bench starts the project's PostgreSQL, migrates it, and builds a real log of N synthetic leaves
(leaf i = RFC 9162 leaf hash of its 8-byte index): a compact range hashes them in batches, as the
sequencer does, and every completed node is streamed into `log_nodes` with COPY (the primary key
is dropped for the load and rebuilt after, which is how a bulk load is done). Then it asks
`anchoring.store.inclusion_proof` for random leaves against the full tree, one query each, times
every call, and checks every proof against the root.

    python bench/proof.py                     # 10M leaves, P4's size (about two minutes here)
    python bench/proof.py --leaves 1000000    # a quick run
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from hashlib import sha256
from pathlib import Path

# Run as `python bench/proof.py`, this directory heads sys.path and bench/ingest.py would shadow the
# `ingest` package: drop it before importing the project.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import psycopg  # noqa: E402

from anchoring.compact import CompactRange  # noqa: E402
from anchoring.proof import inclusion_plan  # noqa: E402
from anchoring.rfc6962 import leaf_hashes  # noqa: E402
from anchoring.store import inclusion_proof, root_at  # noqa: E402
from anchoring.verify import verify_inclusion  # noqa: E402
from ingest.migrate import migrate  # noqa: E402
from managed_services.postgres import Postgres  # noqa: E402

RESULT = Path(__file__).parent / "results" / "proof.json"
TARGET_P99_MS = 5.0
BATCH = 1 << 16


def load(conn: psycopg.Connection, leaves: int) -> tuple[CompactRange, float]:
    """Build the log of `leaves` synthetic leaves into log_nodes; returns it and the seconds taken."""
    began = time.perf_counter()
    tree = CompactRange()
    with conn.transaction():
        conn.execute("ALTER TABLE log_nodes DROP CONSTRAINT log_nodes_pkey")
        with conn.cursor() as cur, cur.copy("COPY log_nodes (level, node_index, hash) FROM STDIN") as copy:
            def sink(level: int, first: int, hashes: Sequence[bytes]) -> None:
                copy.write("".join(f"{level}\t{first + i}\t\\\\x{h.hex()}\n" for i, h in enumerate(hashes)))

            for start in range(0, leaves, BATCH):
                entries = [i.to_bytes(8, "big") for i in range(start, min(start + BATCH, leaves))]
                tree.extend(leaf_hashes(entries), sink)
                print(f"\rloaded {tree.size:,} leaves", end="", file=sys.stderr, flush=True)
        conn.execute("ALTER TABLE log_nodes ADD PRIMARY KEY (level, node_index)")
    conn.execute("VACUUM ANALYZE log_nodes")
    print(file=sys.stderr)
    return tree, time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leaves", type=int, default=10_000_000)
    parser.add_argument("--proofs", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="mrv-bench-proof-"))
    work.chmod(0o755)  # the server runs as the postgres user
    try:
        with Postgres(work / "pg") as pg:
            pg.create_database("bench")
            conninfo = pg.conninfo("bench")
            with psycopg.connect(conninfo, autocommit=True) as conn:
                migrate(conn)
                tree, load_s = load(conn, args.leaves)
                size = tree.size
                root = root_at(conn, size)
                assert root == tree.root(), "the stored nodes do not give the log's root"
                for index in rng.sample(range(size), 200):  # warm the cache and the plan
                    inclusion_proof(conn, index, size)
                times, reads = [], []
                for index in (rng.randrange(size) for _ in range(args.proofs)):
                    start = time.perf_counter()
                    proof = inclusion_proof(conn, index, size)
                    times.append((time.perf_counter() - start) * 1000)
                    reads.append(len(inclusion_plan(index, size).nodes))
                    verify_inclusion(index, size, sha256(b"\x00" + index.to_bytes(8, "big")).digest(), proof, root)
                table_mb = conn.execute("SELECT pg_total_relation_size('log_nodes') / 1e6").fetchone()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cuts = statistics.quantiles(times, n=100)
    result = {
        "benchmark": "inclusion_proof_postgres",
        "leaves": size,
        "proofs": args.proofs,
        "p50_ms": round(cuts[49], 3),
        "p99_ms": round(cuts[98], 3),
        "max_ms": round(max(times), 3),
        "target_p99_ms": TARGET_P99_MS,
        "queries_per_proof": 1,
        "node_reads_per_proof_mean": round(statistics.fmean(reads), 2),
        "node_reads_per_proof_max": max(reads),
        "log2_leaves": round(math.log2(size), 2),
        "load_seconds": round(load_s, 1),
        "log_nodes_mb": round(float(table_mb[0]), 1) if table_mb else None,
    }
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0 if result["p99_ms"] <= TARGET_P99_MS else 1


if __name__ == "__main__":
    sys.exit(main())
