"""`mrv anchor` as real processes: keygen, run --once, status, and R10's short form (sequencers
killed with SIGKILL and restarted, two at once, while envelopes keep arriving)."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from anchoring import Verifier
from anchoring.ledger.local import LocalLedger
from tests.anchoring.log_checks import check_log
from tests.anchoring.pg_log import insert_envelopes, new_device

ORIGIN = "test.example/mrv-log"


def _mrv(*args: str) -> list[str]:
    return [sys.executable, "-m", "mrv_cli", *args]


@pytest.fixture
def log_key(tmp_path: Path) -> tuple[Path, Verifier]:
    path = tmp_path / "log.key"
    done = subprocess.run(_mrv("anchor", "keygen", "--log-key", str(path), "--origin", ORIGIN),
                          capture_output=True, text=True, check=True)
    return path, Verifier.from_vkey(done.stdout.strip())


def _run_args(conninfo: str, key: Path, ledger: Path, *extra: str) -> list[str]:
    return _mrv("anchor", "run", "--conninfo", conninfo, "--log-key", str(key),
                "--ledger", f"local:{ledger}", *extra)


def test_keygen_run_once_and_status(pg_conninfo: str, log_key: tuple[Path, Verifier], tmp_path: Path) -> None:
    key, verifier = log_key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = subprocess.run(_mrv("anchor", "keygen", "--log-key", str(key), "--origin", ORIGIN),
                           capture_output=True, text=True)
    assert again.returncode == 1 and "exists" in again.stderr
    device = new_device(pg_conninfo)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        insert_envelopes(conn, device, 7)
    ledger = tmp_path / "ledger.jsonl"
    subprocess.run(_run_args(pg_conninfo, key, ledger, "--once", "--batch", "3"), check=True, timeout=60)
    assert check_log(pg_conninfo, verifier, ORIGIN) == 7
    assert len(LocalLedger.open(ledger)) == 1
    status = subprocess.run(_mrv("anchor", "status", "--conninfo", pg_conninfo),
                            capture_output=True, text=True, check=True)
    state = json.loads(status.stdout)
    assert state["log_size"] == 7 and state["checkpoint"]["size"] == 7
    assert state["anchors"] == [{"ledger": "local", "status": "confirmed", "count": 1, "max_size": 7}]
    key.chmod(0o644)
    refused = subprocess.run(_run_args(pg_conninfo, key, ledger, "--once"), capture_output=True, text=True)
    assert refused.returncode == 1 and "chmod 600" in refused.stderr


def _writer(conninfo: str, device_id: str, stop: threading.Event, seed: int) -> None:
    """Envelopes in small transactions, a few of them rolled back."""
    rng = random.Random(seed)
    device = new_device(conninfo, device_id)
    with psycopg.connect(conninfo) as conn:
        while not stop.is_set():
            seq, prev = device.seq, device.prev
            insert_envelopes(conn, device, rng.randint(1, 5))
            if rng.random() < 0.1:
                conn.rollback()
                device.seq, device.prev = seq, prev
            else:
                conn.commit()
            time.sleep(rng.random() * 0.01)


def test_sequencers_killed_and_raced_keep_the_log_consistent(
        pg_conninfo: str, log_key: tuple[Path, Verifier], tmp_path: Path, full_run: bool) -> None:
    key, verifier = log_key
    ledger = tmp_path / "ledger.jsonl"
    args = _run_args(pg_conninfo, key, ledger, "--poll", "0.02", "--batch", "7", "--anchor-every", "0.2",
                     "--log-level", "WARNING")
    rng = random.Random(7)
    stop = threading.Event()
    writers = [threading.Thread(target=_writer, args=(pg_conninfo, f"meter-{i}", stop, i)) for i in range(2)]
    for w in writers:
        w.start()
    logs = (tmp_path / "sequencers.log").open("wb")
    running = [subprocess.Popen(args, stderr=logs) for _ in range(2)]  # two start at once
    kills = 0
    deadline = time.monotonic() + (600 if full_run else 10)
    try:
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.5, 1.5))  # a start takes ~0.6 s
            victim = running.pop(rng.randrange(len(running)))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            running.append(subprocess.Popen(args, stderr=logs))
    finally:
        stop.set()
        for w in writers:
            w.join()
        for proc in running:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        logs.close()
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        anchored_while_racing = conn.execute("SELECT count(*) FROM anchors").fetchone()
    subprocess.run([*args, "--once"], check=True, timeout=120)
    size = check_log(pg_conninfo, verifier, ORIGIN)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        committed = conn.execute("SELECT count(*) FROM envelopes").fetchone()
        assert committed == (size,) and size > 50
        unconfirmed = conn.execute("SELECT count(*) FROM anchors WHERE status <> 'confirmed'").fetchone()
        assert unconfirmed == (0,)
    records = LocalLedger.open(ledger)
    assert kills >= 5 and anchored_while_racing is not None and anchored_while_racing[0] >= 2
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        notes = [row[0].encode() for row in conn.execute(
            "SELECT c.note FROM anchors a JOIN checkpoints c ON c.size = a.checkpoint_size")]
    # Every anchored checkpoint is in the ledger exactly once.
    assert len(notes) == len(records)
    assert all(records.lookup(note) is not None for note in notes)
