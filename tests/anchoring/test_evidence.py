"""Bundles built from the database, `mrv proof`, and `mrv verify` as a process (R8 included)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from anchoring import CompactRange, NotLogged, Signer, TlogProof, leaf_hash
from anchoring.bundle import Bundle
from anchoring.evidence import build_bundle
from anchoring.ledger.local import LocalLedger
from anchoring.sequencer import anchor, integrate
from anchoring.verifier import verify_bundle
from tests.anchoring.pg_log import insert_envelopes, new_device
from tests.ingest.helpers import T0

ORIGIN = "test.example/mrv-log"


def _mrv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mrv_cli", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def anchored_log(pg_conninfo: str, tmp_path: Path) -> tuple[str, Signer, Path, list[int]]:
    """8 envelopes, checkpoint 5 anchored on a local ledger, checkpoint 8 not anchored."""
    signer = Signer.generate(ORIGIN)
    ledger = tmp_path / "ledger.jsonl"
    device = new_device(pg_conninfo)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        ids = insert_envelopes(conn, device, 5)
        tree, _ = integrate(conn, CompactRange(), signer, ORIGIN, 100)
        anchor(conn, LocalLedger.open(ledger, create=True), "local")
        ids += insert_envelopes(conn, device, 3)
        integrate(conn, tree, signer, ORIGIN, 100)
    return pg_conninfo, signer, ledger, ids


def test_bundle_from_the_database_verifies(anchored_log: tuple[str, Signer, Path, list[int]],
                                           tmp_path: Path) -> None:
    conninfo, signer, ledger, ids = anchored_log
    with psycopg.connect(conninfo, autocommit=True) as conn:
        early = build_bundle(conn, ids[:4], signer.verifier)
        late = build_bundle(conn, [ids[6]], signer.verifier)
        with pytest.raises(NotLogged):
            build_bundle(conn, [ids[-1] + 1], signer.verifier)
    # Early envelopes are proved against the anchored checkpoint 5, linked to the latest, 8.
    assert [e.checkpoint_size for e in early.envelopes] == [5] * 4
    assert [len(c.receipts) for c in early.checkpoints] == [1, 0]
    assert [(c.size1, c.size2) for c in early.consistency] == [(5, 8)]
    assert [e.checkpoint_size for e in late.envelopes] == [8] and len(late.checkpoints) == 1
    local = LocalLedger.open(ledger)
    report = verify_bundle(early, trusted_vkey=signer.verifier.vkey,
                           check_receipt=lambda receipt, note: local.verify_receipt(receipt, note) is None)
    assert report.ok and all(item.ok for item in report.items)
    path = tmp_path / "bundle.json"
    path.write_bytes(early.encode())
    done = _mrv("verify", str(path), "--ledger-file", str(ledger), "--vkey", signer.verifier.vkey)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS  receipt of checkpoint 5 on local" in done.stdout
    assert "PASS  envelope meter-1/3 (leaf 3)" in done.stdout


def test_bundle_carries_arrival_times_and_the_verifier_checks_them(
        anchored_log: tuple[str, Signer, Path, list[int]], tmp_path: Path) -> None:
    conninfo, signer, ledger, ids = anchored_log
    with psycopg.connect(conninfo, autocommit=True) as conn:
        received = {int(i): t for i, t in conn.execute(
            "SELECT id, received_at FROM envelopes WHERE id = ANY(%s)", [ids[:3]]).fetchall()}
        bundle = build_bundle(conn, ids[:3], signer.verifier)
        # The key's window closes a day after the device times (2026-01-01) but before the envelopes
        # arrived (they were inserted now): valid at the device time, not at arrival.
        until = dt.datetime.fromtimestamp(T0 / 1000, dt.UTC) + dt.timedelta(days=1)
        conn.execute("UPDATE device_keys SET valid_until = %s", [until])
        closed = build_bundle(conn, ids[:3], signer.verifier)
    assert [e.received_at for e in bundle.envelopes] == [received[i] for i in ids[:3]]
    assert all(e.received_at.utcoffset() == dt.timedelta(0) for e in bundle.envelopes)
    assert Bundle.decode(bundle.encode()) == bundle
    assert verify_bundle(bundle).ok
    path = tmp_path / "closed.json"
    path.write_bytes(closed.encode())
    done = _mrv("verify", str(path), "--ledger-file", str(ledger), "--vkey", signer.verifier.vkey)
    assert done.returncode == 1
    kid = closed.keys[0].kid.hex()
    for envelope in closed.envelopes:
        assert (f"FAIL  {envelope.name}: key {kid} was not valid at arrival {envelope.received_at.isoformat()} "
                f"(valid from ") in done.stdout
    assert done.stderr.strip() == ("mrv verify: verification FAILED: "
                                   + "; ".join(e.name for e in closed.envelopes))


def test_proof_command_prints_a_tlog_proof(anchored_log: tuple[str, Signer, Path, list[int]]) -> None:
    conninfo, signer, _, ids = anchored_log
    done = subprocess.run([sys.executable, "-m", "mrv_cli", "proof", "meter-1", "6", "--conninfo", conninfo],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    proof = TlogProof.parse(done.stdout)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT raw FROM envelopes WHERE id = %s", [ids[6]]).fetchone()
    assert row is not None
    checkpoint = proof.verify(leaf_hash(bytes(row[0])), signer.verifier, origin=ORIGIN)
    assert (proof.index, checkpoint.size) == (6, 8)
    missing = _mrv("proof", "meter-1", "99", "--conninfo", conninfo)
    assert missing.returncode == 1 and "log.not_logged" in missing.stderr


def test_r8_envelope_altered_after_anchoring_fails_verification(
        anchored_log: tuple[str, Signer, Path, list[int]], tmp_path: Path) -> None:
    conninfo, signer, ledger, ids = anchored_log
    with psycopg.connect(conninfo, autocommit=True) as conn:
        raw = bytearray(conn.execute("SELECT raw FROM envelopes WHERE id = %s", [ids[2]]).fetchone()[0])  # type: ignore[index]
        raw[-70] ^= 0x01  # one bit of a reading
        conn.execute("UPDATE envelopes SET raw = %s WHERE id = %s", [bytes(raw), ids[2]])
        bundle = build_bundle(conn, ids, signer.verifier)
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle.encode())
    done = _mrv("verify", str(path), "--ledger-file", str(ledger))
    assert done.returncode == 1
    assert "FAIL  envelope meter-1/2 (leaf 2)" in done.stdout
    assert done.stderr.strip() == "mrv verify: verification FAILED: envelope meter-1/2 (leaf 2)"
    assert Bundle.decode(path.read_bytes()) == bundle
