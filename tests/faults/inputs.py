"""Bad input and tampering: R6 (fuzzed payloads through the decision path), R7 (the attack catalogue
through broker, worker and database: tests/ingest/test_attacks.py) and R8 (envelopes altered in the
database after anchoring: the verifier must fail and name each one)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg

from anchoring import CompactRange, Signer
from anchoring.evidence import build_bundle
from anchoring.ledger.local import LocalLedger
from anchoring.sequencer import anchor, integrate
from anchoring.verifier import verify_bundle
from ingest.decide import Admitted, Policy, screen
from managed_services.mosquitto import Mosquitto
from protocol import Reason
from tests.anchoring.pg_log import insert_envelopes, new_device
from tests.faults.record import FaultResult, timed
from tests.ingest.helpers import Device, count
from tests.ingest.test_fuzz import SEED, _registry, fuzz_messages


def r6_fuzzed_payloads(n: int) -> FaultResult:
    """R6: `n` mutated envelopes, random CBOR, random bytes and odd topics through `screen`, the
    ingest decision path. lost: an input that crashed it (no reason recorded); wrongly accepted: one
    admitted."""
    result = FaultResult("R6", f"{n:,} fuzzed payloads through the decision path")
    device = Device("meter-1", "plant-1")
    registry, policy = _registry(device), Policy()
    reasons: dict[str, int] = {}
    with timed(result):
        for kind, message in fuzz_messages(device, n, seed=SEED):
            result.attempts += 1
            try:
                decision = screen(message, registry, policy)
            except Exception as e:  # a crash is what R6 hunts for
                result.lost += 1
                result.details.setdefault("crashes", []).append(f"{kind}: {e!r}"[:200])
                continue
            if isinstance(decision, Admitted):
                result.wrongly_accepted += 1
            elif isinstance(decision.reason, Reason):
                reasons[decision.reason.value] = reasons.get(decision.reason.value, 0) + 1
            else:
                result.lost += 1
    result.details["reasons"] = dict(sorted(reasons.items(), key=lambda kv: -kv[1]))
    return result


def r7_attack_catalogue(conninfo: str, broker: Mosquitto, project_id: str) -> FaultResult:
    """R7: runs tests/ingest/test_attacks.py's catalogue (its assertions are the verdict: every attack
    quarantined with its own reason or flagged, nothing of it stored as valid); attempts are the
    quarantined and chain-flagged inputs it produced."""
    from tests.ingest.test_attacks import test_attack_catalogue

    result = FaultResult("R7", "attack catalogue (forged, unknown/revoked/expired keys, replays, ...)")
    with timed(result):
        try:
            test_attack_catalogue(conninfo, broker, project_id)
        except AssertionError as e:
            result.wrongly_accepted = 1
            result.check(False, str(e).splitlines()[0][:300])
        result.attempts = count(conninfo, "quarantine") + count(conninfo, "chain_events")
    return result


def r8_tamper_after_anchoring(conninfo: str, *, envelopes: int = 12) -> FaultResult:
    """R8: after the log is anchored on a local ledger, each stored envelope in turn is altered in the
    database (one bit of its payload, then its bytes swapped for its neighbour's), a bundle is built from
    the database and verified; each verification must fail and name exactly that envelope. Attempts are
    the tampers; wrongly accepted the ones the verifier passed or blamed on the wrong envelope."""
    result = FaultResult("R8", "stored envelope altered after anchoring")
    origin = "faults.example/r8"
    signer = Signer.generate(origin)
    with timed(result), tempfile.TemporaryDirectory() as tmp, psycopg.connect(conninfo, autocommit=True) as conn:
        ledger = LocalLedger.open(Path(tmp) / "ledger.jsonl", create=True)
        device = new_device(conninfo, "meter-r8", "plant-r8")
        ids = insert_envelopes(conn, device, envelopes)
        integrate(conn, CompactRange(), signer, origin, 100)
        anchor(conn, ledger, "local")
        clean = verify_bundle(build_bundle(conn, ids, signer.verifier), trusted_vkey=signer.verifier.vkey,
                              check_receipt=lambda receipt, note: ledger.verify_receipt(receipt, note) is None)
        result.check(clean.ok, f"the untouched bundle fails: {clean.failures[:2]}")
        originals = {i: bytes(conn.execute("SELECT raw FROM envelopes WHERE id = %s", [i]).fetchone()[0])  # type: ignore[index]
                     for i in ids}
        for index, envelope_id in enumerate(ids):
            flipped = bytearray(originals[envelope_id])
            flipped[-70] ^= 0x01  # one bit of a reading
            for tampered in (bytes(flipped), originals[ids[(index + 1) % len(ids)]]):
                result.attempts += 1
                conn.execute("UPDATE envelopes SET raw = %s WHERE id = %s", [tampered, envelope_id])
                try:
                    report = verify_bundle(build_bundle(conn, ids, signer.verifier),
                                           trusted_vkey=signer.verifier.vkey)
                finally:
                    conn.execute("UPDATE envelopes SET raw = %s WHERE id = %s", [originals[envelope_id], envelope_id])
                named = {f.item for f in report.failures}
                if report.ok or named != {f"envelope meter-r8/{index} (leaf {index})"}:
                    result.wrongly_accepted += 1
                    result.details.setdefault("missed", []).append((index, sorted(named)))
    return result
