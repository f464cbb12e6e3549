"""Who may do what: every endpoint against no credentials, bad credentials and every role; login, logout,
session expiry, token revocation, CSRF and open-redirect refusal; no secret stored in plain text."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from mrv_engine.console.app import create_app
from mrv_engine.console.auth import safe_next
from mrv_engine.console.config import ConsoleConfig
from mrv_engine.console.users import Role
from tests.console.conftest import SeedDatabase
from tests.console.seed import PASSWORDS, WIND_DEVICE, WIND_PROJECT, expire_sessions

pytestmark = pytest.mark.integration

PERIOD = "2026-06"
# (method, path, JSON body, roles allowed). Paths that would do real work for an allowed role point at
# the project without a configuration, so that they answer 404 quickly instead.
READ = [("GET", p, None) for p in (
    "/api/v1/me", "/api/v1/projects", "/api/v1/projects/pv-db", "/api/v1/devices", "/api/v1/devices?project=pv-db",
    f"/api/v1/devices/{WIND_DEVICE}", f"/api/v1/devices/{WIND_DEVICE}/readings?points=5", "/api/v1/fleet",
    "/api/v1/quarantine?limit=2", "/api/v1/quarantine/counts", "/api/v1/checkpoints", "/api/v1/anchors",
    f"/api/v1/projects/{WIND_PROJECT}/periods", f"/api/v1/projects/{WIND_PROJECT}/reports/{PERIOD}",
    f"/api/v1/projects/{WIND_PROJECT}/reports/{PERIOD}/evidence", "/api/v1/users", "/api/v1/tokens")]
ADMIN_READS = {"/api/v1/users", "/api/v1/tokens"}
OPERATE = [("POST", f"/api/v1/projects/{WIND_PROJECT}/reports/{PERIOD}", None)]
ADMINISTER = [
    ("POST", "/api/v1/devices", {"project_id": "p", "kind": "pv", "capacity_w": 1,
                                 "public_key": {"device_id": "d-new", "public_key": "AAAA"}}),
    ("POST", "/api/v1/devices/no-such-device/revoke", None),
    ("POST", "/api/v1/users", {"name": "new-user", "role": "verifier", "password": "long-enough-1"}),
    ("DELETE", "/api/v1/users/no-such-user", None),
    ("POST", "/api/v1/tokens", {"user": "no-such-user"}),
    ("POST", "/api/v1/tokens/999999/revoke", None),
]


def _allowed(method: str, path: str) -> set[Role]:
    if (method, path, None) in OPERATE:
        return {Role.ADMIN, Role.OPERATOR}
    if method != "GET" or path in ADMIN_READS:
        return {Role.ADMIN}
    return set(Role)


ENDPOINTS = READ + OPERATE + ADMINISTER


def _call(client: TestClient, method: str, path: str, body: object, headers: dict[str, str]) -> int:
    return int(client.request(method, path, json=body, headers=headers).status_code)


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_every_endpoint_checks_credentials_and_role(module_client: TestClient, console_seed: SeedDatabase,
                                                    method: str, path: str, body: object) -> None:
    missing = module_client.request(method, path, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "authentication required" in missing.json()["detail"]
    for bad in ("Bearer mrv_not-a-token", "Bearer ", "Basic YWRtaW46YWRtaW4=", "mrv_xyz"):
        assert _call(module_client, method, path, body, {"Authorization": bad}) == 401, bad
    tokens = console_seed.seeded.tokens
    for role in Role:
        status = _call(module_client, method, path, body, {"Authorization": f"Bearer {tokens[role]}"})
        if role in _allowed(method, path):
            assert status not in (401, 403), (role, status)
        else:
            assert status == 403, (role, status)


def test_a_verifier_reads_everything_and_changes_nothing(module_client: TestClient, console_seed: SeedDatabase,
                                                         console_module_db: str) -> None:
    headers = {"Authorization": f"Bearer {console_seed.seeded.tokens[Role.VERIFIER]}"}
    for _, path, _ in READ:
        status = module_client.get(path, headers=headers).status_code
        assert status == (403 if path in ADMIN_READS else 404 if WIND_PROJECT + "/reports" in path else 200), path

    def state() -> tuple[object, ...]:
        with psycopg.connect(console_module_db) as conn:
            return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()  # noqa: S608 - fixed names
                         for t in ("devices", "device_keys WHERE status = 'active'", "console_users",
                                   "console_tokens WHERE revoked_at IS NULL"))
    before = state()
    for method, path, body in OPERATE + ADMINISTER + [
            ("POST", f"/api/v1/devices/{WIND_DEVICE}/revoke", None), ("DELETE", "/api/v1/users/admin", None)]:
        assert module_client.request(method, path, json=body, headers=headers).status_code == 403
    assert state() == before


def _login(client: TestClient, user: str, password: str, next_: str | None = None,
           origin: str | None = "http://testserver") -> httpx.Response:
    form = {"username": user, "password": password} | ({"next": next_} if next_ is not None else {})
    headers = {"Origin": origin} if origin else {}
    return client.post("/login", data=form, headers=headers, follow_redirects=False)


@pytest.fixture
def browser(console_config: ConsoleConfig) -> Iterator[TestClient]:
    """A fresh client (its own cookie jar) on a database of this test's own."""
    with TestClient(create_app(console_config)) as c:
        yield c


def test_login_sets_a_session_cookie_and_logout_ends_it(browser: TestClient) -> None:
    response = _login(browser, "operator", PASSWORDS[Role.OPERATOR], "/devices?project=pv-db")
    assert response.status_code == 303 and response.headers["location"] == "/devices?project=pv-db"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("mrv_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # secure_cookies is off in the test config
    assert browser.get("/api/v1/me").json() == {"name": "operator", "role": "operator"}
    session = browser.cookies["mrv_session"]

    out = browser.post("/logout", headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert "mrv_session" not in browser.cookies
    browser.cookies.set("mrv_session", session)  # the old cookie, replayed
    assert browser.get("/api/v1/me").status_code == 401


def test_a_wrong_password_or_unknown_user_goes_back_to_the_login_page(browser: TestClient) -> None:
    for user, password in (("admin", "wrong-password"), ("nobody", "whatever-123"), ("admin", "")):
        response = _login(browser, user, password, "/fleet")
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/login?error=1&next=%2Ffleet"
        assert "set-cookie" not in response.headers
    assert browser.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "http:/x",
                                    "javascript:alert(1)", "evil.example", "/ok\r\nSet-Cookie: x=1", "", None])
def test_only_local_paths_are_redirect_targets(target: str | None) -> None:
    assert safe_next(target) == "/"


def test_login_never_redirects_off_site(module_client: TestClient) -> None:
    assert safe_next("/devices/pv-1?metric=active_power_w#x") == "/devices/pv-1?metric=active_power_w#x"
    response = _login(module_client, "admin", PASSWORDS[Role.ADMIN], "//evil.example/login")
    assert response.status_code == 303 and response.headers["location"] == "/"
    module_client.cookies.clear()


def test_an_expired_session_is_refused(browser: TestClient, console_db: str) -> None:
    _login(browser, "verifier", PASSWORDS[Role.VERIFIER])
    assert browser.get("/api/v1/fleet").status_code == 200
    expire_sessions(console_db)
    response = browser.get("/api/v1/fleet")
    assert response.status_code == 401 and "log in again" in response.json()["detail"]


def test_a_revoked_or_expired_token_is_refused(console_client: TestClient, console_seed: SeedDatabase,
                                              console_db: str) -> None:
    admin = {"Authorization": f"Bearer {console_seed.seeded.tokens[Role.ADMIN]}"}
    created = console_client.post("/api/v1/tokens", json={"user": "verifier", "label": "ci"}, headers=admin)
    assert created.status_code == 201
    token = {"Authorization": f"Bearer {created.json()['token']}"}
    assert console_client.get("/api/v1/me", headers=token).json() == {"name": "verifier", "role": "verifier"}
    assert console_client.post(f"/api/v1/tokens/{created.json()['id']}/revoke", headers=admin).status_code == 204
    assert console_client.get("/api/v1/me", headers=token).status_code == 401
    listed = console_client.get("/api/v1/tokens?user=verifier", headers=admin).json()
    assert [t["revoked_at"] is not None for t in listed] == [False, True]
    assert all("token" not in t for t in listed)

    operator = {"Authorization": f"Bearer {console_seed.seeded.tokens[Role.OPERATOR]}"}
    assert console_client.get("/api/v1/me", headers=operator).status_code == 200
    with psycopg.connect(console_db, autocommit=True) as conn:
        conn.execute("UPDATE console_tokens SET expires_at = now() WHERE user_name = 'operator'")
    assert console_client.get("/api/v1/me", headers=operator).status_code == 401


def test_cookie_requests_that_change_state_must_come_from_this_origin(browser: TestClient) -> None:
    _login(browser, "admin", PASSWORDS[Role.ADMIN])
    body = {"name": "csrf-victim", "role": "admin", "password": "long-enough-1"}
    for headers in ({}, {"Origin": "https://evil.example"}, {"Referer": "https://evil.example/page"},
                    {"Origin": "null"}):
        response = browser.post("/api/v1/users", json=body, headers=headers)
        assert response.status_code == 403 and "cross-origin" in response.json()["detail"], headers
    assert browser.post("/api/v1/users", json=body, headers={"Origin": "http://testserver"}).status_code == 201
    assert browser.get("/api/v1/users").status_code == 200  # reads need no Origin
    # a login started by another site is refused too (login CSRF)
    assert _login(browser, "admin", PASSWORDS[Role.ADMIN], origin="https://evil.example").status_code == 403


def test_no_password_token_or_session_id_is_stored_in_plain_text(browser: TestClient, console_db: str,
                                                                 console_seed: SeedDatabase) -> None:
    _login(browser, "admin", PASSWORDS[Role.ADMIN])
    session = browser.cookies["mrv_session"]
    with psycopg.connect(console_db) as conn:
        stored = b"\n".join(bytes(str(row), "utf-8") + b"".join(bytes(v) for v in row if isinstance(v, bytes))
                            for table in ("console_users", "console_tokens", "console_sessions")
                            for row in conn.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608
        hashes = [h for (h,) in conn.execute("SELECT password_hash FROM console_users")]
    secrets = [*PASSWORDS.values(), *console_seed.seeded.tokens.values(), session]
    for secret in secrets:
        assert secret.encode() not in stored
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert len(stored) > 0
