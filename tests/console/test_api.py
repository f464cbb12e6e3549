"""The API doing its work: enrolling and revoking a device, users and tokens, and, on a real uvicorn
server, a report and its evidence bundle, which the real `mrv verify` accepts."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from anchoring.cli_verify import main as verify_bundle
from mrv_engine.console.app import create_app
from mrv_engine.console.config import ConsoleConfig
from mrv_engine.console.users import Role
from protocol import Ed25519Signer
from tests.console.conftest import REPO, ConsoleServer, SeedDatabase, make_config
from tests.console.seed import PV_PROJECT, REPORT_PERIOD, WIND_PROJECT

pytestmark = pytest.mark.integration


def _auth(seed: SeedDatabase, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {seed.seeded.tokens[role]}"}


def test_enroll_then_revoke_a_device(console_db: str, console_seed: SeedDatabase, tmp_path: Path) -> None:
    broker_dir = tmp_path / "broker"
    config = make_config(console_db, console_seed.seeded, tmp_path / "reports", broker_dir=broker_dir)
    with TestClient(create_app(config)) as client:
        _enroll_then_revoke(client, _auth(console_seed, Role.ADMIN), broker_dir / "passwd")


def _enroll_then_revoke(console_client: TestClient, admin: dict[str, str], passwd: Path) -> None:
    signer = Ed25519Signer.generate()
    key = {"device_id": "pv-new", "algorithm": "Ed25519", "kid": signer.kid.hex(),
           "public_key": base64.b64encode(signer.public_key).decode()}
    body = {"project_id": "solar-new", "role": "main", "kind": "pv", "capacity_w": 250_000, "public_key": key}
    enrolled = console_client.post("/api/v1/devices", json=body, headers=admin)
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["kid"] == signer.kid.hex() and len(enrolled.json()["broker_password"]) >= 16
    assert "pv-new:$7$" in passwd.read_text() and passwd.stat().st_mode & 0o777 == 0o600  # the broker may log in

    device = console_client.get("/api/v1/devices/pv-new", headers=admin).json()
    assert (device["project_id"], device["key_status"], device["envelopes"]) == ("solar-new", "active", 0)
    assert [p["id"] for p in console_client.get("/api/v1/projects", headers=admin).json()].count("solar-new") == 1
    again = console_client.post("/api/v1/devices", json=body, headers=admin)
    assert again.status_code == 409 and "already enrolled" in again.json()["detail"]

    revoked = console_client.post("/api/v1/devices/pv-new/revoke", headers=admin)
    assert revoked.json() == {"device_id": "pv-new", "revoked": [signer.kid.hex()]}
    assert console_client.get("/api/v1/devices/pv-new", headers=admin).json()["key_status"] == "revoked"
    assert "pv-new" not in passwd.read_text()  # no active key: no broker login
    assert console_client.post("/api/v1/devices/pv-new/revoke", headers=admin).status_code == 404


def test_enrollment_refuses_bad_keys(console_client: TestClient, console_seed: SeedDatabase) -> None:
    admin = _auth(console_seed, Role.ADMIN)
    signer = Ed25519Signer.generate()
    good = {"device_id": "pv-x", "public_key": base64.b64encode(signer.public_key).decode()}
    for key, status in (({**good, "public_key": "AAAA"}, 400), ({**good, "kid": "00" * 16}, 400),
                        ({**good, "public_key": base64.b64encode(bytes(32)).decode()}, 409),  # small-order point
                        ({**good, "algorithm": "RSA"}, 422), ({**good, "device_id": "../x"}, 422)):
        body = {"project_id": "p", "kind": "pv", "capacity_w": 1, "public_key": key}
        response = console_client.post("/api/v1/devices", json=body, headers=admin)
        assert response.status_code == status, (key, response.text)
    assert console_client.get("/api/v1/devices/pv-x", headers=admin).status_code == 404


def test_users_and_tokens_made_through_the_api_work(console_client: TestClient, console_seed: SeedDatabase) -> None:
    admin = _auth(console_seed, Role.ADMIN)
    created = console_client.post("/api/v1/users", json={"name": "auditor", "role": "verifier"}, headers=admin)
    assert created.status_code == 201 and len(created.json()["password"]) >= 16
    assert console_client.post("/api/v1/users", json={"name": "auditor", "role": "admin"},
                               headers=admin).status_code == 409
    token = console_client.post("/api/v1/tokens", json={"user": "auditor", "expires_in_days": 1}, headers=admin)
    assert token.json()["token"].startswith("mrv_")
    bearer = {"Authorization": f"Bearer {token.json()['token']}"}
    assert console_client.get("/api/v1/me", headers=bearer).json() == {"name": "auditor", "role": "verifier"}
    listed = {u["name"]: u for u in console_client.get("/api/v1/users", headers=admin).json()}
    assert listed["auditor"]["active_tokens"] == 1 and "password" not in listed["auditor"]
    assert console_client.delete("/api/v1/users/admin", headers=admin).status_code == 409  # not yourself
    assert console_client.delete("/api/v1/users/auditor", headers=admin).status_code == 204
    assert console_client.get("/api/v1/me", headers=bearer).status_code == 401


def test_bad_input_gets_a_clear_error_not_a_crash(console_client: TestClient, console_seed: SeedDatabase) -> None:
    reader = _auth(console_seed, Role.VERIFIER)
    for path, status, words in (
            (f"/api/v1/projects/{PV_PROJECT}/reports/2026-13", 400, "YYYY-MM"),
            (f"/api/v1/projects/{PV_PROJECT}/reports/2026-06-09..2026-06-01", 400, "ends before"),
            (f"/api/v1/projects/{PV_PROJECT}/reports/2020-01..2026-01", 400, "at most"),
            (f"/api/v1/projects/{PV_PROJECT}/reports/{dt.date.today().year + 1}-01", 409, "in the future"),
            (f"/api/v1/projects/{WIND_PROJECT}/reports/2026-06", 404, "no configuration"),
            ("/api/v1/projects/nope", 404, "no project"),
            ("/api/v1/devices/pv-1/readings?start=2026-06-02T00:00:00", 400, "UTC offset"),
            ("/api/v1/devices/pv-1/readings?start=2026-06-02T00:00:00Z&end=2026-06-01T00:00:00Z", 400, "before"),
            ("/api/v1/devices/pv-1/readings?metric=volts", 422, "metric"),
            ("/api/v1/devices/pv-1/readings?points=0", 422, "points"),
            ("/api/v1/quarantine?limit=100000", 422, "limit")):
        response = console_client.get(path, headers=reader)
        assert response.status_code == status, (path, response.text)
        assert words in str(response.json()["detail"]), (path, response.text)


def test_report_and_evidence_download_pass_mrv_verify(console_server: ConsoleServer, tmp_path: Path) -> None:
    seed = console_server.seed
    path = f"/api/v1/projects/{PV_PROJECT}/reports/{REPORT_PERIOD}"
    with console_server.client(seed.tokens[Role.VERIFIER]) as verifier:
        first = verifier.get(path)
        assert first.status_code == 200, first.text
        report = first.json()
        assert report["period"] == REPORT_PERIOD and report["evidence_available"]
        doc = report["report"]
        assert doc["project_id"] == PV_PROJECT and doc["totals"]["net_wh"] > 0
        assert doc["evidence"]["checkpoint_size"] in seed.checkpoint_sizes
        assert verifier.get(path).json()["generated_at"] == report["generated_at"]  # served from the cache
        assert verifier.post(path).status_code == 403

        download = verifier.get(path + "/evidence")
        assert download.status_code == 200
        assert download.headers["content-disposition"].startswith("attachment;")
        assert "pv-db_2026-06-02_2026-06-02.bundle.json" in download.headers["content-disposition"]
    bundle = tmp_path / "evidence.bundle.json"
    bundle.write_bytes(download.content)
    verify = [sys.executable, "-m", "mrv_cli", "verify", str(bundle), "--ledger-file", str(seed.ledger_file),
              "--vkey", seed.log_vkey]
    result = subprocess.run(verify, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    doc_bundle = json.loads(download.content)
    doc_bundle["envelopes"][0]["leaf_index"] += 1  # a proof that no longer fits must be caught
    bundle.write_text(json.dumps(doc_bundle))
    assert verify_bundle(verify[4:]) == 1  # the same command, in-process

    with console_server.client(seed.tokens[Role.OPERATOR]) as operator:
        again = operator.post(path)
        assert again.status_code == 200 and again.json()["generated_at"] > report["generated_at"]
        assert again.json()["report"]["totals"] == doc["totals"]


def test_a_report_is_made_again_only_when_its_inputs_change(console_client: TestClient, console_db: str,
                                                            console_config: ConsoleConfig,
                                                            console_seed: SeedDatabase) -> None:
    reader = _auth(console_seed, Role.VERIFIER)
    path = f"/api/v1/projects/{PV_PROJECT}/reports/{REPORT_PERIOD}"
    first = console_client.get(path, headers=reader).json()
    assert console_client.get(path, headers=reader).json()["data_version"] == first["data_version"]
    with psycopg.connect(console_db, autocommit=True) as conn:  # the latest anchor was never recorded
        conn.execute("DELETE FROM anchors WHERE checkpoint_size = %s", [max(console_seed.seeded.checkpoint_sizes)])
    second = console_client.get(path, headers=reader).json()
    assert second["data_version"] != first["data_version"] and second["evidence_available"]
    cached = console_config.reports_dir / PV_PROJECT / REPORT_PERIOD
    assert [p.name for p in cached.iterdir()] == [second["data_version"]]


def test_reading_a_report_leaves_the_rollups_to_ingest(console_db: str, console_seed: SeedDatabase,
                                                      tmp_path: Path) -> None:
    """A GET used to refresh the rollups before making a report: a write, and a slow one. Ingest keeps them
    now (`ingest.rollups`); the console reads, and a day not packed yet is read raw, to the same numbers."""
    path = f"/api/v1/projects/{PV_PROJECT}/reports/{REPORT_PERIOD}"
    reader = _auth(console_seed, Role.VERIFIER)
    with TestClient(create_app(make_config(console_db, console_seed.seeded, tmp_path / "packed"))) as client:
        packed = client.get(path, headers=reader)
    with psycopg.connect(console_db, autocommit=True) as conn:  # nothing packed: every day is pending
        conn.execute("DELETE FROM readings_frames")
        conn.execute("DELETE FROM envelopes_packed")
        conn.execute("UPDATE rollup_watermark SET (txid, envelope_id) = ('0', 0)")
    with TestClient(create_app(make_config(console_db, console_seed.seeded, tmp_path / "raw"))) as client:
        raw = client.get(path, headers=reader)
    assert packed.status_code == raw.status_code == 200, raw.text
    assert raw.json()["report"]["totals"] == packed.json()["report"]["totals"]
    with psycopg.connect(console_db) as conn:
        assert conn.execute("SELECT count(*) FROM readings_frames").fetchone() == (0,)
        assert conn.execute("SELECT txid::text, envelope_id FROM rollup_watermark").fetchone() == ("0", 0)
