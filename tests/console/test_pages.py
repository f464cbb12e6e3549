"""The console's pages, in-process against the seeded database: every page for every role, the login
redirect, admin-only pages, enrollment and revocation through the forms, the quarantine browser's filters
and keyset pagination, and escaping of hostile values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient

from mrv_engine.console import pages
from mrv_engine.console.users import Role
from protocol.keys import Ed25519Signer, PublicKeyRecord
from tests.console.conftest import SeedDatabase, db_row
from tests.console.seed import (
    PASSWORDS,
    PV_DEVICE,
    PV_PROJECT,
    QUARANTINE,
    WIND_DEVICE,
    WIND_PROJECT,
)

pytestmark = pytest.mark.integration

ORIGIN = {"Origin": "http://testserver"}  # what a browser sends with a form post from the console's own page
DAYS = "2026-06-01..2026-06-02"  # pv-1 has 50 h of data from local midnight: its whole days (day 3 is not over)
PAGES = ["/", f"/devices/{PV_DEVICE}", f"/devices/{WIND_DEVICE}", f"/projects/{PV_PROJECT}",
         f"/projects/{WIND_PROJECT}", f"/projects/{PV_PROJECT}/reports/{DAYS}", "/anchors", "/quarantine",
         "/quarantine?reason=bad_signature"]


def log_in(client: TestClient, role: Role) -> None:
    response = client.post("/login", data={"username": role.value, "password": PASSWORDS[role]}, headers=ORIGIN,
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/", response.text


@pytest.fixture
def reader(module_client: TestClient) -> Iterator[TestClient]:
    """The module's client, cookies cleared after the test."""
    yield module_client
    module_client.cookies.clear()


def field(html: str, name: str) -> str:
    """The data-value (or text) of the first element with data-field=name."""
    match = re.search(rf'data-field="{name}"(?: data-period="[^"]*")?(?: data-value="([^"]*)")?[^>]*>([^<]*)<', html)
    assert match, f"no data-field {name}"
    return match[1] if match[1] is not None else match[2]


@pytest.mark.parametrize("role", list(Role))
def test_every_page_renders_for_every_role(reader: TestClient, role: Role) -> None:
    log_in(reader, role)
    for path in PAGES:
        response = reader.get(path)
        assert response.status_code == 200, (path, response.text[:2000])
        assert response.headers["content-type"].startswith("text/html")
        assert f'<span data-field="user">{role.value}</span>' in response.text
        assert ('href="/admin/devices"' in response.text) == (role is Role.ADMIN), path


def test_fleet_page_shows_every_device_with_its_troubles(reader: TestClient) -> None:
    log_in(reader, Role.VERIFIER)
    html = reader.get("/").text
    row = re.search(rf'<tr data-device="{WIND_DEVICE}">(.*?)</tr>', html, re.S)
    assert row and f'href="/devices/{WIND_DEVICE}"' in row[1]
    assert re.search(r'data-field="missing_seqs">4<', row[1]) and re.search(r'data-field="chain_breaks">2<', row[1])
    assert "3 bad_signature" in row[1]
    assert f'<tr data-device="{PV_DEVICE}">' in html
    chart = re.search(r'<figure class="chart" id="envelopes-per-hour">.*?<script type="application/json">(.*?)'
                      r"</script>", html, re.S)
    assert chart
    spec = json.loads(chart[1])
    assert spec["series"][0]["values"] and len(spec["x"]) == len(spec["series"][0]["values"])
    assert '/static/vendor/uPlot.iife.min.js' in html
    assert reader.get("/static/vendor/uPlot.iife.min.js").status_code == 200


def test_device_page_shows_keys_chain_events_and_readings(reader: TestClient) -> None:
    log_in(reader, Role.OPERATOR)
    html = reader.get(f"/devices/{WIND_DEVICE}").text
    assert "<code>10–12</code>" in html and "<code>50</code>" in html  # the envelopes that never arrived
    assert html.count('<tr data-kind="chain_break">') == 2 and '<tr data-kind="gap">' in html
    assert 'data-status="active"' in html
    charts = re.findall(r'<figure class="chart" id="readings-([a-z_]+)">.*?<script type="application/json">(.*?)'
                        r"</script>", html, re.S)
    assert charts and all(len(json.loads(spec)["x"]) > 0 for _, spec in charts)
    assert reader.get("/devices/no-such-device").status_code == 404


def test_project_page_reports_the_whole_days_with_data(reader: TestClient) -> None:
    log_in(reader, Role.VERIFIER)
    html = reader.get(f"/projects/{PV_PROJECT}").text
    assert f'<tr data-period="{DAYS}">' in html
    assert f'href="/projects/{PV_PROJECT}/reports/{DAYS}"' in html
    assert f'href="/projects/{PV_PROJECT}/reports/2026-06"' in html
    served = reader.get(f"/api/v1/projects/{PV_PROJECT}/reports/{DAYS}").json()["report"]
    assert field(html, "net_generation_wh") == str(served["totals"]["net_wh"]) and served["totals"]["net_wh"] > 0
    assert 'id="generation"' in html and 'id="reductions"' in html
    without_config = reader.get(f"/projects/{WIND_PROJECT}").text
    assert "No report figures" in without_config and f"{WIND_PROJECT}.toml" in without_config
    assert '<tr data-period="2026-05">' in without_config  # wt-1's months, from the envelopes
    assert reader.get("/projects/no-such-project").status_code == 404


def test_report_page_shows_the_numbers_the_api_serves(reader: TestClient) -> None:
    log_in(reader, Role.VERIFIER)
    html = reader.get(f"/projects/{PV_PROJECT}/reports/{DAYS}").text
    doc = reader.get(f"/api/v1/projects/{PV_PROJECT}/reports/{DAYS}").json()["report"]
    totals = doc["totals"]
    assert field(html, "net_generation_wh") == str(totals["net_wh"])
    assert field(html, "reductions_tco2e") == totals["reductions_tco2e"]
    assert field(html, "issuable_units") == str(totals["issuable_units"])
    assert field(html, "envelopes") == str(doc["inputs"]["envelopes"]["count"])
    assert field(html, "checkpoint_size") == str(doc["checkpoint"]["size"])
    link = re.search(r'id="evidence-download" href="([^"]+)" download="([^"]+)"', html)
    assert link
    download = reader.get(link[1])
    assert download.status_code == 200 and json.loads(download.content)  # the session cookie is enough
    assert reader.get(f"/projects/{PV_PROJECT}/reports/not-a-period").status_code == 400


def test_anchors_page_shows_verified_checkpoints(reader: TestClient, console_seed: SeedDatabase) -> None:
    log_in(reader, Role.VERIFIER)
    html = reader.get("/anchors").text
    for size in console_seed.seeded.checkpoint_sizes:
        row = re.search(rf'<tr id="checkpoint-{size}" data-size="{size}">(.*?)</tr>', html, re.S)
        assert row, size
        assert re.search(r'data-field="signature"><span class="badge ok" data-status="verified">', row[1])
        assert "receipt matches" in row[1]
    assert html.count('data-status="verified">verified</span> <span class="note">from') == 1  # the newer one


def test_quarantine_filters_and_keyset_pages(reader: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    log_in(reader, Role.OPERATOR)
    monkeypatch.setattr(pages, "QUARANTINE_PAGE", 2)
    seen: list[int] = []
    path: str | None = "/quarantine"
    while path is not None:
        html = reader.get(path).text
        seen += [int(i) for i in re.findall(r'<tr data-id="(\d+)">', html)]
        older = re.search(r'<a href="(/quarantine\?[^"]+)" rel="next">', html)
        path = older[1].replace("&amp;", "&") if older else None
    assert len(seen) == sum(QUARANTINE.values()) and seen == sorted(set(seen), reverse=True)

    html = reader.get("/quarantine?reason=bad_signature").text
    reasons = re.findall(r'data-field="reason">([^<]*)<', html)
    assert reasons == ["bad_signature", "bad_signature"]
    older = re.search(r'<a href="/quarantine\?([^"]+)" rel="next">', html)
    assert older and parse_qs(older[1].replace("&amp;", "&"))["reason"] == ["bad_signature"]
    html = reader.get("/quarantine?device=ghost&reason=").text
    assert re.findall(r'data-field="device_id">([^<]*)<', html) == ["ghost"]
    assert reader.get("/quarantine?before=-1").status_code == 400


def test_logged_out_pages_redirect_to_login(reader: TestClient) -> None:
    for path in [*PAGES, "/admin/devices"]:
        response = reader.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        target = urlsplit(response.headers["location"])
        assert target.path == "/login" and parse_qs(target.query)["next"] == [path]
    login = reader.get("/login?next=/anchors")
    assert login.status_code == 200 and 'name="next" value="/anchors"' in login.text
    assert 'role="alert"' not in login.text
    assert 'role="alert"' in reader.get("/login?error=1").text
    refused = reader.post("/login", data={"username": "admin", "password": "wrong", "next": "/anchors"},
                          headers=ORIGIN)
    assert refused.url.path == "/login" and 'role="alert"' in refused.text
    # After logging in, the browser lands where it was going.
    landed = reader.post("/login", data={"username": "verifier", "password": PASSWORDS[Role.VERIFIER],
                                         "next": "/anchors"}, headers=ORIGIN)
    assert landed.url.path == "/anchors" and "Checkpoints and anchors" in landed.text
    reader.post("/logout", headers=ORIGIN)
    assert reader.get("/anchors", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.VERIFIER])
def test_admin_pages_refuse_other_roles(console_client: TestClient, console_db: str, role: Role) -> None:
    log_in(console_client, role)
    page = console_client.get("/admin/devices")
    assert page.status_code == 403 and "this page is for admins" in page.text and "<html" in page.text
    record = PublicKeyRecord("d-refused", Ed25519Signer.generate().public_key)
    enroll = console_client.post("/admin/devices", headers=ORIGIN, data={
        "public_key": record.to_json(), "project_id": PV_PROJECT, "kind": "pv", "capacity_w": "1000"})
    assert enroll.status_code == 403
    assert console_client.post(f"/admin/devices/{PV_DEVICE}/revoke", headers=ORIGIN).status_code == 403
    assert db_row(console_db, "SELECT count(*) FROM devices WHERE id = 'd-refused'") == (0,)
    assert db_row(console_db, "SELECT status FROM device_keys WHERE device_id = %s", [PV_DEVICE]) == ("active",)


def test_admin_enrolls_and_revokes_through_the_forms(console_client: TestClient, console_db: str) -> None:
    log_in(console_client, Role.ADMIN)
    record = PublicKeyRecord("meter-new", Ed25519Signer.generate().public_key)
    form = {"public_key": record.to_json(), "project_id": "fresh-project", "kind": "wind", "role": "main",
            "capacity_w": "2500000"}
    enrolled = console_client.post("/admin/devices", data=form, headers=ORIGIN)
    assert enrolled.status_code == 200, enrolled.text
    password = re.search(r'data-field="broker_password">([^<]+)<', enrolled.text)
    assert password and len(password[1]) >= 16
    assert db_row(console_db, "SELECT project_id, kind, capacity_w FROM devices WHERE id = 'meter-new'") == (
        "fresh-project", "wind", 2500000)
    assert password[1] not in console_client.get("/admin/devices").text  # shown once only

    again = console_client.post("/admin/devices", data=form, headers=ORIGIN)
    assert again.status_code == 409 and "already enrolled" in again.text
    bad = console_client.post("/admin/devices", data=form | {"public_key": "{not json"}, headers=ORIGIN)
    assert bad.status_code == 400 and "not JSON" in bad.text and "{not json" in bad.text  # the form keeps it

    revoked = console_client.post("/admin/devices/meter-new/revoke", headers=ORIGIN, follow_redirects=False)
    assert revoked.status_code == 303
    page = console_client.get(revoked.headers["location"]).text
    assert 'id="revoked"' in page
    assert re.search(r'<tr data-device="meter-new">.*?data-status="revoked"', page, re.S)
    assert db_row(console_db, "SELECT status FROM device_keys WHERE device_id = 'meter-new'") == ("revoked",)
    assert console_client.post("/admin/devices/no-such-device/revoke", headers=ORIGIN).status_code == 404


def test_cross_origin_form_posts_are_refused(console_client: TestClient, console_db: str) -> None:
    log_in(console_client, Role.ADMIN)
    for headers in ({"Origin": "http://evil.example"}, {}):
        response = console_client.post(f"/admin/devices/{PV_DEVICE}/revoke", headers=headers)
        assert response.status_code == 403, headers
    assert db_row(console_db, "SELECT status FROM device_keys WHERE device_id = %s", [PV_DEVICE]) == ("active",)


def test_hostile_values_are_escaped(console_client: TestClient, console_db: str) -> None:
    hostile = '<script>alert("x")</script>'
    with psycopg.connect(console_db, autocommit=True) as conn:
        conn.execute("INSERT INTO quarantine (received_at, topic, reason, detail, device_id, raw_size, raw) "
                     "VALUES (now(), %s, %s, %s, %s, 1, '\\x00')",
                     [f"mrv/v1/x/{hostile}/up", '<img src=x onerror="alert(1)">', hostile, hostile])
    log_in(console_client, Role.VERIFIER)
    for path in ("/quarantine", "/quarantine?" + "device=" + hostile.replace("<", "%3C").replace(">", "%3E")):
        html = console_client.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(" in html
    login = console_client.get('/login?next="><script>alert(1)</script>').text
    assert "<script>alert" not in login and 'name="next" value="/"' in login


def test_vendored_chart_library_carries_its_licence() -> None:
    vendor = Path(pages.__file__).parent / "static" / "vendor"
    script = (vendor / "uPlot.iife.min.js").read_text()
    assert "uPlot 1.6.32" in script[:200] and "The MIT License" in script[:1000]
    assert (vendor / "uPlot.min.css").is_file()
