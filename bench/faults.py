"""The fault suite (TARGETS.md R1–R10) with real processes, one line per fault: attempts, lost,
duplicated, wrongly accepted, pass/fail, seconds; results in bench/results/faults.json.

The scenarios are the ones the pytest short forms run (tests/faults/); --full runs the long forms:
R1 with 10 kills under a heavier load, R6 with 100,000 payloads, R10 for 10 minutes.

    python bench/faults.py                 # short forms (what CI runs through pytest)
    python bench/faults.py --full          # long forms
    python bench/faults.py --only R4,R9    # some of them
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

from tests.faults import edge_faults, ingest_faults, inputs  # noqa: E402
from tests.faults.disk_full import MountRefused, r9_disk_full  # noqa: E402
from tests.faults.env import FaultEnv  # noqa: E402
from tests.faults.outage import r4_gateway_outage  # noqa: E402
from tests.faults.record import HEADER, FaultResult, timed  # noqa: E402

RESULT = REPO / "bench" / "results" / "faults.json"
Scenario = Callable[[FaultEnv, bool], FaultResult]


def _project() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def _r1(env: FaultEnv, full: bool) -> FaultResult:
    load = {"devices": 50, "per_device": 600, "rate": 1000} if full else {}
    return ingest_faults.r1_worker_kills(env.database(), env.broker().port, env.workdir("r1"), _project(), **load)


def _r9(env: FaultEnv, full: bool) -> FaultResult:
    try:
        return r9_disk_full(env.broker(), env.database(), env.workdir("r9"), _project())
    except MountRefused as e:
        return FaultResult("R9", "gateway disk full", failed_checks=[f"not run: {e}"])


SCENARIOS: dict[str, Scenario] = {
    "R1": _r1,
    "R2": lambda env, full: edge_faults.r2_broker_restart(env.broker(), env.workdir("r2"), _project()),
    "R2-ingest": lambda env, full: edge_faults.r2_restart_through_ingest(
        env.broker(), env.database(), env.workdir("r2i"), _project()),
    "R2-crash": lambda env, full: edge_faults.r2_offline_subscriber(
        env.broker(), env.database(), env.workdir("r2c"), _project(), crash=True),
    "R2-shared": lambda env, full: edge_faults.r2_offline_subscriber(
        env.broker(), env.database(), env.workdir("r2s"), _project(), crash=False),
    "R3": lambda env, full: ingest_faults.r3_postgres_restart(
        env.database(), env.postgres, env.broker().port, env.workdir("r3"), _project()),
    "R4": lambda env, full: r4_gateway_outage((env.broker(), env.broker()), (env.database(), env.database()),
                                              env.workdir("r4")),
    "R5": lambda env, full: edge_faults.r5_agent_kills(env.broker(), env.workdir("r5"), _project()),
    "R6": lambda env, full: inputs.r6_fuzzed_payloads(100_000 if full else 3000),
    "R7": lambda env, full: inputs.r7_attack_catalogue(env.database(), env.broker(), _project()),
    "R8": lambda env, full: inputs.r8_tamper_after_anchoring(env.database()),
    "R9": _r9,
    "R10": lambda env, full: ingest_faults.r10_random_restarts(
        env.database(), env.broker().port, env.workdir("r10"), _project(), restarts=10, seconds=600 if full else 0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--short", action="store_true", help="the short forms (default)")
    size.add_argument("--full", action="store_true", help="the long forms")
    parser.add_argument("--only", help="comma-separated ids, e.g. R4,R9 (R2 variants: R2-ingest, R2-crash, R2-shared)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    wanted = list(SCENARIOS) if not args.only else [i.strip() for i in args.only.split(",")]
    unknown = [i for i in wanted if i not in SCENARIOS]
    if unknown:
        parser.error(f"unknown fault ids {unknown}; known: {', '.join(SCENARIOS)}")

    results: list[FaultResult] = []
    env = FaultEnv()
    print(HEADER, flush=True)
    try:
        for fault_id in wanted:
            try:
                result = SCENARIOS[fault_id](env, args.full)
            except Exception as e:  # a scenario that could not finish is a failed fault, not a crash of the suite
                result = FaultResult(fault_id, "scenario did not finish")
                with timed(result):
                    result.check(False, f"{e!r}"[:300])
                result.details["traceback"] = traceback.format_exc()[-2000:]
            results.append(result)
            print(result.line(), flush=True)
    finally:
        env.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "form": "full" if args.full else "short",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": "shared 2-core build machine (contended)",
        "results": [r.to_json() for r in results],
    }, indent=2) + "\n")
    failed = [r.id for r in results if not r.passed]
    summary = f"{len(results) - len(failed)} of {len(results)} passed"
    print(summary + (f"; failed: {', '.join(failed)}" if failed else "") + f" -> {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
