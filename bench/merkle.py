"""P3: Merkle log append + root for N leaves, against hashlib making the same SHA-256 calls.

The log hashes every leaf (RFC 9162 leaf hash), appends the hashes to one compact range in
batches, as the sequencer does, and takes the root. A tree of N leaves has N - 1 interior nodes, so
the baseline hashes N leaf-sized and N - 1 node-sized (65-byte) messages, prepared beforehand, in a
tight loop.

The machine is shared, so timings swing by tens of percent from one second to the next. Both runs
are therefore cut into segments that alternate (baseline segment, then the log's matching share of
leaves), every segment is repeated, and the best time of each segment is kept, as timeit does. The
sums cover one whole N-leaf build and all 2N - 1 baseline calls.

    python bench/merkle.py                 # 1M leaves of 350 bytes: envelopes of 10 readings
    python bench/merkle.py --leaves 100000 --leaf-bytes 32
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from hashlib import sha256
from pathlib import Path

from anchoring.compact import CompactRange
from anchoring.rfc6962 import leaf_hashes

TARGET = 1.3
RESULT = Path(__file__).parent / "results" / "merkle.json"


def time_log(log: CompactRange, leaves: list[bytes], batch: int, with_root: bool) -> float:
    start = time.perf_counter()
    for i in range(0, len(leaves), batch):
        log.extend(leaf_hashes(leaves[i : i + batch]))
    if with_root:
        log.root()
    return time.perf_counter() - start


def time_baseline(messages: list[bytes]) -> float:
    start = time.perf_counter()
    for message in messages:
        sha256(message).digest()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leaves", type=int, default=1_000_000, help="number of leaves (default 1M)")
    parser.add_argument(
        "--leaf-bytes",
        type=int,
        default=350,
        help="size of each leaf's data (default 350, a 10-reading envelope)",
    )
    parser.add_argument("--batch", type=int, default=1000, help="leaves per append call (default 1000)")
    parser.add_argument("--segments", type=int, default=20, help="alternating timed segments (default 20)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each segment, best kept (default 5)")
    parser.add_argument("--out", type=Path, default=RESULT, help=f"JSON result file (default {RESULT})")
    args = parser.parse_args(argv)
    if min(args.leaves, args.batch, args.segments, args.repeat) < 1:
        parser.error("--leaves, --batch, --segments and --repeat must be positive")

    rng = random.Random(0)
    leaves = [rng.randbytes(args.leaf_bytes) for _ in range(args.leaves)]
    # Segments end on batch boundaries, so cutting the run changes none of the log's append calls.
    step = -(-args.leaves // args.segments // args.batch) * args.batch
    segments = [leaves[i : i + step] for i in range(0, args.leaves, step)]
    node_messages = [b"\x01" + rng.randbytes(64) for _ in range(args.leaves - 1)]
    baselines = [
        [b"\x00" + data for data in segment] + node_messages[i * step : i * step + len(segment)]
        for i, segment in enumerate(segments)
    ]

    best_log = [float("inf")] * len(segments)
    best_baseline = [float("inf")] * len(segments)
    for _ in range(args.repeat):
        log = CompactRange()
        for i, segment in enumerate(segments):
            best_baseline[i] = min(best_baseline[i], time_baseline(baselines[i]))
            best_log[i] = min(best_log[i], time_log(log, segment, args.batch, i == len(segments) - 1))
    seconds, baseline = sum(best_log), sum(best_baseline)
    ratio = seconds / baseline
    result = {
        "benchmark": "merkle_append",
        "leaves": args.leaves,
        "seconds": round(seconds, 4),
        "baseline_seconds": round(baseline, 4),
        "ratio": round(ratio, 3),
        "target": TARGET,
        "leaf_bytes": args.leaf_bytes,
        "batch": args.batch,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(".tmp")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    partial.replace(args.out)

    print(f"log: append + root of {args.leaves:,} leaves ({args.leaf_bytes} B): {seconds:.3f} s")
    print(f"baseline: {2 * args.leaves - 1:,} SHA-256 calls in a loop:      {baseline:.3f} s")
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"ratio {ratio:.3f} {verdict} the P3 target of {TARGET}; written to {args.out}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
