"""The failed-login throttle: the pure module (a fake clock), its settings, and the login form against a
real database (a correct password refused while throttled, other users unaffected, the window passing)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from mrv_engine.console.app import create_app
from mrv_engine.console.config import ConsoleConfig, ConsoleConfigError, load_config
from mrv_engine.console.throttle import Lockout, LoginThrottle, minutes
from mrv_engine.console.users import Role
from tests.console.seed import PASSWORDS

WINDOW_S = 900


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _fail(throttle: LoginThrottle, times: int, user: str, address: str = "10.0.0.1") -> list[Lockout]:
    return [throttle.failed(user, address) for _ in range(times)]


# ---------------------------------------------------------------- the module


def test_a_user_is_throttled_after_the_limit_until_the_oldest_failure_leaves_the_window(clock: FakeClock) -> None:
    throttle = LoginThrottle(per_user=3, per_address=100, window_s=WINDOW_S, clock=clock)
    _fail(throttle, 2, "alice")
    assert throttle.wait_s("alice", "10.0.0.1") == 0
    clock.now += 100
    assert throttle.failed("alice", "10.0.0.1") == Lockout(user=True, address=False)
    assert throttle.wait_s("alice", "10.0.0.1") == WINDOW_S - 100  # the first failure was 100 s earlier
    assert throttle.wait_s("alice", "10.0.0.2") == WINDOW_S - 100  # from any address
    assert throttle.wait_s("bob", "10.0.0.1") == 0  # the address is under its own limit
    clock.now += WINDOW_S - 100 - 1
    assert throttle.wait_s("alice", "10.0.0.1") == 1
    clock.now += 1  # the two oldest failures have left the window; the third is still in it
    assert throttle.wait_s("alice", "10.0.0.1") == 0
    assert [lockout.user for lockout in _fail(throttle, 2, "alice")] == [False, True]  # the limit again
    assert throttle.wait_s("alice", "10.0.0.1") == 100


def test_an_address_is_throttled_for_every_user_name(clock: FakeClock) -> None:
    throttle = LoginThrottle(per_user=100, per_address=4, window_s=WINDOW_S, clock=clock)
    lockouts = [throttle.failed(f"user-{i}", "10.0.0.9") for i in range(4)]
    assert lockouts == [Lockout(False, False)] * 3 + [Lockout(user=False, address=True)]
    assert throttle.wait_s("someone-else", "10.0.0.9") == WINDOW_S
    assert throttle.wait_s("someone-else", "10.0.0.8") == 0
    throttle.succeeded("user-0")  # a success clears the user's count, not the address's
    assert throttle.wait_s("user-0", "10.0.0.9") == WINDOW_S
    clock.now += WINDOW_S
    assert throttle.wait_s("someone-else", "10.0.0.9") == 0


def test_a_success_clears_the_users_failures(clock: FakeClock) -> None:
    throttle = LoginThrottle(per_user=3, per_address=100, window_s=WINDOW_S, clock=clock)
    _fail(throttle, 2, "alice")
    throttle.succeeded("alice")
    assert [lockout.user for lockout in _fail(throttle, 3, "alice")] == [False, False, True]


def test_a_lockout_is_reported_once(clock: FakeClock) -> None:
    throttle = LoginThrottle(per_user=2, per_address=100, window_s=WINDOW_S, clock=clock)
    # failures recorded after the limit (logins that were already being checked) report no new lockout
    assert [lockout.user for lockout in _fail(throttle, 4, "alice")] == [False, True, False, False]


def test_memory_is_bounded_by_dropping_the_least_recently_failed_key(clock: FakeClock) -> None:
    throttle = LoginThrottle(per_user=2, per_address=1000, window_s=WINDOW_S, max_keys=3, clock=clock)
    _fail(throttle, 2, "alice")  # throttled
    _fail(throttle, 1, "bob")
    _fail(throttle, 1, "carol")
    assert throttle.tracked() == (3, 1)
    _fail(throttle, 1, "bob")  # bob and carol are newer than alice now
    _fail(throttle, 1, "dave")
    assert throttle.tracked() == (3, 1)
    assert throttle.wait_s("alice", "10.0.0.2") == 0  # dropped: the price of the bound
    assert throttle.wait_s("bob", "10.0.0.2") == WINDOW_S  # kept
    for i in range(10_000):
        throttle.failed(f"user-{i}", f"10.1.{i // 256}.{i % 256}")
    assert throttle.tracked() == (3, 3)


def test_expired_keys_are_forgotten_when_looked_at(clock: FakeClock) -> None:
    throttle = LoginThrottle(per_user=2, per_address=100, window_s=WINDOW_S, clock=clock)
    _fail(throttle, 1, "alice")
    clock.now += WINDOW_S
    assert throttle.wait_s("alice", "10.0.0.1") == 0
    assert throttle.tracked() == (0, 0)


@pytest.mark.parametrize(("wait_s", "expected"), [(0.5, 1), (60, 1), (61, 2), (900, 15)])
def test_waits_are_shown_in_whole_minutes_rounded_up(wait_s: float, expected: int) -> None:
    assert minutes(wait_s) == expected


# ---------------------------------------------------------------- the settings


def test_the_throttle_settings_have_defaults_and_are_validated() -> None:
    config = load_config(None, {})
    assert (config.login_failures_per_user, config.login_failures_per_address,
            config.login_failure_window_s) == (5, 20, 900)
    config = load_config(None, {"MRV_CONSOLE__LOGIN_FAILURES_PER_USER": "3"})
    assert config.login_failures_per_user == 3
    for name, value in (("login_failures_per_user", "0"), ("login_failures_per_address", "-1"),
                        ("login_failure_window_s", "0"), ("login_failure_window_s", "100000")):
        with pytest.raises(ConsoleConfigError, match=name):
            load_config(None, {f"MRV_CONSOLE__{name.upper()}": value})


# ---------------------------------------------------------------- the login form

ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def throttled(console_config: ConsoleConfig, clock: FakeClock) -> Iterator[TestClient]:
    """The app with a throttle of 3 failures per user (default per address) on the fake clock."""
    config = console_config.model_copy(update={"login_failures_per_user": 3})
    app = create_app(config)
    app.state.login_throttle = LoginThrottle(config.login_failures_per_user, config.login_failures_per_address,
                                             config.login_failure_window_s, clock=clock)
    with TestClient(app) as client:
        yield client


def _login(client: TestClient, user: str, password: str) -> httpx.Response:
    return client.post("/login", data={"username": user, "password": password, "next": "/fleet"}, headers=ORIGIN,
                       follow_redirects=False)


def _error(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    return parse_qs(location.query)


@pytest.mark.integration
def test_after_the_limit_even_the_right_password_is_refused_until_the_window_passes(
        throttled: TestClient, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mrv_engine.console.auth")
    assert _error(_login(throttled, "operator", "wrong-password-1")) == {"error": ["1"], "next": ["/fleet"]}
    clock.now += 60
    assert _error(_login(throttled, "operator", "wrong-password-2"))["error"] == ["1"]
    # the third failure throttles the user, and says so at once
    assert _error(_login(throttled, "operator", "wrong-password-3")) == {
        "error": ["locked"], "minutes": ["14"], "next": ["/fleet"]}
    refused = _login(throttled, "operator", PASSWORDS[Role.OPERATOR])
    assert _error(refused) == {"error": ["locked"], "minutes": ["14"], "next": ["/fleet"]}
    assert "set-cookie" not in refused.headers
    page = throttled.get(refused.headers["location"])
    assert page.status_code == 200 and "Too many failed logins: try again in 14 minutes." in page.text
    lockouts = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lockouts == ["too many failed console logins of user 'operator': refused for 14 min"]
    assert not any("wrong-password" in r.getMessage() for r in caplog.records)

    # another user (from the same address) is unaffected
    assert _login(throttled, "verifier", PASSWORDS[Role.VERIFIER]).headers["location"] == "/fleet"

    clock.now += WINDOW_S - 60  # the first failure has left the window
    admitted = _login(throttled, "operator", PASSWORDS[Role.OPERATOR])
    assert admitted.status_code == 303 and admitted.headers["location"] == "/fleet"
    assert throttled.get("/api/v1/me").json() == {"name": "operator", "role": "operator"}
    # the success cleared the count: three more failures before the next lockout
    assert [_error(_login(throttled, "operator", "wrong"))["error"] for _ in range(3)] == [["1"], ["1"], ["locked"]]


@pytest.mark.integration
def test_the_login_page_says_which_error(console_client: TestClient) -> None:
    assert "Wrong user name or password" in console_client.get("/login?error=1").text
    locked = console_client.get("/login?error=locked&minutes=1").text
    assert "Too many failed logins: try again in 1 minute." in locked and "Wrong" not in locked
    assert console_client.get("/login?error=locked&minutes=x").status_code == 400
