"""A tiny run of bench/merkle.py, so the P3 benchmark cannot rot unnoticed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "merkle.py"


def test_bench_writes_its_result(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_merkle", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "merkle.json"
    status = bench.main(["--leaves", "3000", "--repeat", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert {"benchmark", "leaves", "seconds", "baseline_seconds", "ratio", "target"} <= result.keys()
    assert (result["benchmark"], result["leaves"], result["target"]) == ("merkle_append", 3000, 1.3)
    assert status == (0 if result["ratio"] <= 1.3 else 1)
