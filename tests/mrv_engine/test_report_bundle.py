"""`mrv report --log-vkey`: the evidence bundle of exactly the report's envelopes, accepted by `mrv verify`
once a checkpoint covers them, and a note instead of a bundle before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from anchoring import CompactRange, Signer
from anchoring.bundle import Bundle
from anchoring.cli_verify import main as verify
from anchoring.ledger.local import LocalLedger
from anchoring.sequencer import anchor, integrate
from mrv_engine.cli import main
from mrv_engine.results import EnvelopeDigest
from protocol import envelope_hash
from tests.ingest.helpers import Device
from tests.mrv_engine.dbplant import PROJECT, project_toml, recording, store

ORIGIN = "test.example/mrv-log"


def _sign_envelopes(conninfo: str) -> int:
    """Store a recording of device pv-1, its stand-in envelopes replaced by signed ones; returns their number."""
    store(conninfo, [recording()])
    device = Device("pv-1", PROJECT)
    with psycopg.connect(conninfo) as conn:
        conn.execute("INSERT INTO device_keys (kid, device_id, public_key, valid_from) "
                     "VALUES (%s, 'pv-1', %s, '2000-01-01')", [device.signer.kid, device.signer.public_key])
        rows = conn.execute("SELECT id, (extract(epoch FROM device_time) * 1000)::int8 FROM envelopes "
                            "WHERE device_id = 'pv-1' ORDER BY seq").fetchall()
        updates = []
        for envelope_id, time_ms in rows:
            prev = device.prev
            raw = device.next(time_ms)
            updates.append((raw, envelope_hash(raw), prev, device.signer.kid, envelope_id))
        conn.cursor().executemany("UPDATE envelopes SET raw = %s, hash = %s, prev = %s, kid = %s WHERE id = %s",
                                  updates)
    return len(rows)


def _report(conninfo: str, out: Path, *extra: str) -> tuple[int, dict[str, Any] | None]:
    config = out.parent / "project.toml"
    config.write_text(project_toml())
    code = main([PROJECT, "--from", "2026-06-02", "--to", "2026-06-02", "--config", str(config),
                 "--conninfo", conninfo, "--out", str(out), *extra])
    return code, json.loads((out / "report.json").read_text()) if code == 0 else None


def test_report_writes_the_bundle_of_its_envelopes(pg_conninfo: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    stored = _sign_envelopes(pg_conninfo)
    signer, ledger = Signer.generate(ORIGIN), tmp_path / "ledger.jsonl"
    vkey = signer.verifier.vkey

    code, uncovered = _report(pg_conninfo, tmp_path / "early", "--log-vkey", vkey)
    assert code == 0 and uncovered is not None
    assert uncovered["evidence"] is None and not (tmp_path / "early" / "report.bundle.json").exists()
    assert "no evidence bundle written: no checkpoint covers every envelope" in uncovered["notes"]

    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        integrate(conn, CompactRange(), signer, ORIGIN, 10_000)
        anchor(conn, LocalLedger.open(ledger, create=True), "local")
    out = tmp_path / "out"
    code, doc = _report(pg_conninfo, out, "--log-vkey", vkey)
    assert code == 0 and doc is not None, capsys.readouterr().err
    digest = doc["inputs"]["envelopes"]
    assert doc["evidence"] == {"bundle": "report.bundle.json", "envelopes": digest["count"],
                               "checkpoint_size": stored}
    assert 0 < digest["count"] < stored  # the day's envelopes, not those of the days around it
    assert not any("evidence bundle" in n for n in doc["notes"])
    assert "report.bundle.json" in (out / "report.html").read_text()
    bundle = Bundle.decode((out / "report.bundle.json").read_bytes())
    assert EnvelopeDigest.of(envelope_hash(e.raw).hex() for e in bundle.envelopes).to_dict() == digest
    capsys.readouterr()
    assert verify([str(out / "report.bundle.json"), "--ledger-file", str(ledger), "--vkey", vkey]) == 0
    assert "verified: " in capsys.readouterr().out

    code, keyless = _report(pg_conninfo, out)  # the same directory: the earlier bundle goes
    assert code == 0 and keyless is not None and keyless["evidence"] is None
    assert any("--log-vkey" in n and "mrv anchor keygen" in n for n in keyless["notes"])
    assert not (out / "report.bundle.json").exists()

    code, _ = _report(pg_conninfo, tmp_path / "wrong", "--log-vkey", Signer.generate(ORIGIN).verifier.vkey)
    assert code == 1 and "--log-vkey" in capsys.readouterr().err
