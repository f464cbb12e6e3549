"""The device registry: enrollment with key validation, rotation, revocation, the worker's view, and
the `mrv devices` command."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ingest.broker_auth import check_password
from ingest.decide import KeyStatus
from ingest.errors import EnrollmentRefused, UnknownDevice
from ingest.registry import (
    MeterRole,
    PlantKind,
    broker_accounts,
    enroll_device,
    list_devices,
    load_registry_view,
    registry_version,
    revoke_keys,
    rotate_key,
    set_ingest_account,
)
from protocol import Ed25519Signer, PublicKeyRecord

pytestmark = pytest.mark.integration


def _enroll(conn: psycopg.Connection, record: PublicKeyRecord, project: str = "plant-1") -> str:
    return enroll_device(conn, record, project_id=project, role=MeterRole.MAIN, kind=PlantKind.PV,
                         capacity_w=5_000_000)


@pytest.fixture
def conn(pg_conninfo: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_conninfo, autocommit=True) as c:
        yield c


def test_enroll_then_the_view_holds_device_and_key(conn: psycopg.Connection) -> None:
    signer = Ed25519Signer.generate()
    before = registry_version(conn)
    password = _enroll(conn, PublicKeyRecord("meter-1", signer.public_key))
    view = load_registry_view(conn)
    assert view.version > before
    assert view.device_projects == {"meter-1": "plant-1"}
    key = view.keys[signer.kid]
    assert (key.device_id, key.public_key, key.status, key.valid_until_ms) == (
        "meter-1", signer.public_key, KeyStatus.ACTIVE, None)
    [account] = broker_accounts(conn)
    assert account.username == "meter-1" and account.enabled and account.project_id == "plant-1"
    assert check_password(password, account.password_hash)
    assert not check_password("guess", account.password_hash)
    assert conn.execute("SELECT last_seq FROM device_chain WHERE device_id = 'meter-1'").fetchone() == (None,)


def test_enrollment_refuses_bad_and_reused_keys(conn: psycopg.Connection) -> None:
    signer = Ed25519Signer.generate()
    _enroll(conn, PublicKeyRecord("meter-1", signer.public_key))
    with pytest.raises(EnrollmentRefused, match="already enrolled"):
        _enroll(conn, PublicKeyRecord("meter-1", Ed25519Signer.generate().public_key))
    with pytest.raises(EnrollmentRefused, match="already enrolled"):
        _enroll(conn, PublicKeyRecord("meter-2", signer.public_key))
    small_order = bytes(32)  # the identity point: "signatures" would verify without any private key
    with pytest.raises(EnrollmentRefused, match="not a valid Ed25519 key"):
        _enroll(conn, PublicKeyRecord("meter-3", small_order))
    with pytest.raises(EnrollmentRefused, match="capacity"):
        enroll_device(conn, PublicKeyRecord("meter-4", Ed25519Signer.generate().public_key), project_id="p",
                      role=MeterRole.CHECK, kind=PlantKind.WIND, capacity_w=0)
    assert [d.device_id for d in list_devices(conn)] == ["meter-1"]


def test_rotation_closes_the_old_window_and_revocation_disables_the_account(conn: psycopg.Connection) -> None:
    old, new = Ed25519Signer.generate(), Ed25519Signer.generate()
    _enroll(conn, PublicKeyRecord("meter-1", old.public_key))
    now = dt.datetime.now(dt.UTC)
    grace = dt.timedelta(minutes=5)
    closed = rotate_key(conn, PublicKeyRecord("meter-1", new.public_key), grace=grace, now=now)
    assert closed == [old.kid]
    keys = load_registry_view(conn).keys
    assert keys[old.kid].valid_until_ms == int((now + dt.timedelta(minutes=5)).timestamp() * 1000)
    assert keys[new.kid].valid_from_ms == int(now.timestamp() * 1000) and keys[new.kid].valid_until_ms is None
    with pytest.raises(UnknownDevice):
        rotate_key(conn, PublicKeyRecord("meter-9", Ed25519Signer.generate().public_key))
    assert revoke_keys(conn, "meter-1", old.kid) == [old.kid]
    assert broker_accounts(conn)[0].enabled  # the new key is still active
    assert revoke_keys(conn, "meter-1") == [new.kid]
    assert not broker_accounts(conn)[0].enabled
    with pytest.raises(UnknownDevice):
        revoke_keys(conn, "meter-1")
    [device] = list_devices(conn)
    assert {k.status for k in device.keys} == {KeyStatus.REVOKED}
    assert all(k.revoked_at is not None for k in device.keys)


def test_ingest_account_is_a_reader(conn: psycopg.Connection) -> None:
    password = set_ingest_account(conn)
    again = set_ingest_account(conn)
    [account] = broker_accounts(conn)
    assert account.role == "ingest" and check_password(again, account.password_hash)
    assert not check_password(password, account.password_hash)


def _mrv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mrv_cli", *args], capture_output=True, text=True,
                          timeout=60)


def test_devices_cli(pg_conninfo: str, tmp_path: Path) -> None:
    signer = Ed25519Signer.generate()
    record = tmp_path / "meter-1.pub.json"
    record.write_text(PublicKeyRecord("meter-1", signer.public_key).to_json())
    broker_dir = tmp_path / "broker"
    common = ["--conninfo", pg_conninfo]
    enrolled = _mrv("devices", "enroll", "--project", "plant-1", "--public-key", str(record),
                    "--role", "main", "--kind", "pv", "--capacity-w", "5000000",
                    "--broker-dir", str(broker_dir), *common)
    assert enrolled.returncode == 0, enrolled.stderr
    credential = broker_dir / "credentials" / "meter-1.password"
    password = credential.read_text().strip()
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    assert password not in enrolled.stdout and "password:" not in enrolled.stdout
    assert "user meter-1\ntopic write mrv/v1/plant-1/meter-1/up\n" in (broker_dir / "acl").read_text()
    assert stat.S_IMODE((broker_dir / "passwd").stat().st_mode) == 0o600

    shown = _mrv("devices", "ingest-account", "--broker-dir", str(broker_dir), "--show-password", *common)
    ingest_password = (broker_dir / "credentials" / "ingest.password").read_text().strip()
    assert shown.returncode == 0 and f"password: {ingest_password}" in shown.stdout

    again = _mrv("devices", "enroll", "--project", "plant-1", "--public-key", str(record), "--role", "main",
                 "--kind", "pv", "--capacity-w", "1", "--broker-dir", str(broker_dir), *common)
    assert again.returncode == 1 and "already enrolled" in again.stderr and "Traceback" not in again.stderr

    listed = _mrv("devices", "list", "--json", *common)
    [device] = json.loads(listed.stdout)
    assert device["device_id"] == "meter-1" and device["keys"][0]["kid"] == signer.kid.hex()

    revoked = _mrv("devices", "revoke", "meter-1", "--broker-dir", str(broker_dir), *common)
    assert revoked.returncode == 0 and signer.kid.hex() in revoked.stdout
    assert "meter-1" not in (broker_dir / "passwd").read_text()
    assert os.access(broker_dir / "acl", os.R_OK)


def test_devices_cli_enrols_a_fleet_all_or_none(pg_conninfo: str, tmp_path: Path) -> None:
    records = []
    for i in range(3):
        records.append(tmp_path / f"meter-{i}.pub.json")
        records[-1].write_text(PublicKeyRecord(f"meter-{i}", Ed25519Signer.generate().public_key).to_json())
    broker_dir = tmp_path / "broker"
    common = ["--project", "plant-1", "--role", "main", "--kind", "pv", "--capacity-w", "5000000",
              "--broker-dir", str(broker_dir), "--conninfo", pg_conninfo]
    first = _mrv("devices", "enroll", "--public-key", *map(str, records[:2]), *common)
    assert first.returncode == 0, first.stderr
    acl = (broker_dir / "acl").read_text()
    assert all(f"user meter-{i}\n" in acl for i in range(2))
    assert all(check_password((broker_dir / "credentials" / f"meter-{i}.password").read_text().strip(),
                              _hash_of(broker_dir / "passwd", f"meter-{i}")) for i in range(2))
    # meter-1 again: refused, and meter-2 is not enrolled either
    refused = _mrv("devices", "enroll", "--public-key", str(records[2]), str(records[1]), *common)
    assert refused.returncode == 1 and "already enrolled" in refused.stderr
    listed = json.loads(_mrv("devices", "list", "--json", "--conninfo", pg_conninfo).stdout)
    assert sorted(d["device_id"] for d in listed) == ["meter-0", "meter-1"]
    assert not (broker_dir / "credentials" / "meter-2.password").exists()


def _hash_of(passwd: Path, user: str) -> str:
    return next(line.split(":", 1)[1] for line in passwd.read_text().splitlines() if line.startswith(f"{user}:"))
