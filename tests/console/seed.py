"""A console database with something to show: a PV project whose envelopes are really signed, logged,
checkpointed and anchored on a local ledger (so its reports have an evidence bundle that `mrv verify`
accepts), a second project whose device has gaps, chain breaks and quarantined input, and the three
console users with known passwords and API tokens."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import psycopg

from anchoring import CompactRange, Signer
from anchoring.ledger.local import LocalLedger
from anchoring.sequencer import anchor, integrate
from mrv_engine.console import users
from mrv_engine.seed import write
from protocol import envelope_hash
from tests.ingest.helpers import Device
from tests.mrv_engine.dbplant import PROJECT, project_toml, recording

ORIGIN = "console.test/mrv-log"
PV_PROJECT, PV_DEVICE = PROJECT, "pv-1"
WIND_PROJECT, WIND_DEVICE = "wind-x", "wt-1"
REPORT_PERIOD = "2026-06-02..2026-06-02"  # a whole local day of pv-1's data
DELETED_SEQS = (10, 11, 12, 50)  # envelopes of wt-1 that never arrived
CHAIN_BREAKS = 2
QUARANTINE = {("wt-1", "bad_signature"): 3, (None, "malformed_cbor"): 2, ("ghost", "unknown_device"): 1}
PASSWORDS = {users.Role.ADMIN: "admin-password-1", users.Role.OPERATOR: "operator-password-1",
             users.Role.VERIFIER: "verifier-password-1"}


@dataclass(frozen=True)
class Seeded:
    log_vkey: str
    ledger_file: Path
    projects_dir: Path
    tokens: dict[users.Role, str]  # an API token of the user named after each role
    checkpoint_sizes: tuple[int, int]
    pv_envelopes: int


def _sign_stored(conn: psycopg.Connection, device_id: str, project_id: str) -> int:
    """Replace the stand-in envelopes of `device_id` by envelopes really signed by a new key of it."""
    device = Device(device_id, project_id)
    stand_in = conn.execute("SELECT kid FROM device_keys WHERE device_id = %s", [device_id]).fetchone()
    conn.execute("INSERT INTO device_keys (kid, device_id, public_key, valid_from) VALUES (%s, %s, %s, '2000-01-01')",
                 [device.signer.kid, device_id, device.signer.public_key])
    rows = conn.execute("SELECT id, (extract(epoch FROM device_time) * 1000)::int8 FROM envelopes "
                        "WHERE device_id = %s ORDER BY seq", [device_id]).fetchall()
    updates = []
    for envelope_id, time_ms in rows:
        prev = device.prev
        raw = device.next(time_ms)
        updates.append((raw, envelope_hash(raw), prev, device.signer.kid, envelope_id))
    conn.cursor().executemany("UPDATE envelopes SET raw = %s, hash = %s, prev = %s, kid = %s WHERE id = %s", updates)
    if stand_in is not None:
        conn.execute("DELETE FROM device_keys WHERE kid = %s", [stand_in[0]])
    return len(rows)


def _damage(conn: psycopg.Connection) -> None:
    """wt-1 loses some envelopes, ingest recorded chain breaks, and input was quarantined."""
    conn.execute("DELETE FROM readings WHERE envelope_id IN (SELECT id FROM envelopes "
                 "WHERE device_id = %s AND seq = ANY(%s))", [WIND_DEVICE, list(DELETED_SEQS)])
    conn.execute("DELETE FROM envelopes WHERE device_id = %s AND seq = ANY(%s)", [WIND_DEVICE, list(DELETED_SEQS)])
    conn.execute("INSERT INTO chain_events (device_id, kind, seq_from, seq_to, detail) VALUES "
                 "(%s, 'gap', 10, 12, 'seq 13 arrived after 9'), (%s, 'chain_break', 30, 30, 'prev mismatch'), "
                 "(%s, 'chain_break', 40, 40, 'prev mismatch')", [WIND_DEVICE] * 3)
    for (device, reason), n in QUARANTINE.items():
        for i in range(n):
            raw = bytes([0xA0 + i]) * 40
            conn.execute("INSERT INTO quarantine (received_at, topic, reason, detail, device_id, seq, raw_size, raw) "
                         "VALUES (now() - %s * interval '1 minute', %s, %s, 'seeded', %s, %s, %s, %s)",
                         [i, f"mrv/v1/{WIND_PROJECT}/{device or 'x'}/up", reason, device, i, len(raw), raw])


def seed(conninfo: str, workdir: Path) -> Seeded:
    signer = Signer.generate(ORIGIN)
    ledger_file = workdir / "ledger.jsonl"
    ledger = LocalLedger.open(ledger_file, create=True)
    with psycopg.connect(conninfo) as conn:
        write(conn, PV_PROJECT, [recording(PV_DEVICE, hours=50)])
        pv_envelopes = _sign_stored(conn, PV_DEVICE, PV_PROJECT)
        conn.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        tree, first = integrate(conn, CompactRange(), signer, ORIGIN, 100_000)
        anchor(conn, ledger, "local")
    with psycopg.connect(conninfo) as conn:
        write(conn, WIND_PROJECT, [recording(WIND_DEVICE, seed=2, hours=3)])
        _damage(conn)
        conn.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        _, second = integrate(conn, tree, signer, ORIGIN, 100_000)
        anchor(conn, ledger, "local")
        tokens = {}
        for role, password in PASSWORDS.items():
            users.add_user(conn, role.value, role, password)
            tokens[role] = users.create_token(conn, role.value, "seed")[1]
    assert first is not None and second is not None
    projects_dir = workdir / "projects"
    projects_dir.mkdir()
    (projects_dir / f"{PV_PROJECT}.toml").write_text(project_toml((PV_DEVICE,)))
    return Seeded(signer.verifier.vkey, ledger_file, projects_dir, tokens, (first.size, second.size), pv_envelopes)


def expire_sessions(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("UPDATE console_sessions SET expires_at = now() - interval '1 second'")


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)
