"""A tiny run of bench/proof.py, so the P4 benchmark cannot rot unnoticed. It starts its own cluster
twice (about 10 s here), so it runs with --full."""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench" / "proof.py"


@pytest.mark.full
def test_bench_builds_caches_and_measures(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_proof", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cache = Path(tempfile.mkdtemp(prefix="mrv-bench-proof-"))  # not tmp_path: the server runs as postgres
    cache.chmod(0o755)
    out = tmp_path / "proof.json"
    try:
        args = ["--leaves", "3000", "--proofs", "100", "--cache", str(cache), "--out", str(out)]
        status = bench.main(args)
        first = json.loads(out.read_text())
        bench.main(args)
        second = json.loads(out.read_text())
        (build,) = cache.iterdir()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    assert first["leaves"] == 3000 and first["build_seconds"] is not None
    assert second["build_seconds"] is None and build.name.startswith("3000-")  # the cached build was reused
    # 3,000 leaves: 12 tree levels, in tiles of 5 levels; the right edge adds a few nodes and tiles
    assert first["tile_rows_per_proof_max"] <= 6 and first["node_hashes_per_proof_max"] <= 2 * 12
    assert status == (0 if first["p99_ms"] <= first["target_p99_ms"] else 1)
