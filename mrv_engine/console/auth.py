"""Who is asking: API tokens (`Authorization: Bearer mrv_...`) and login sessions (cookie `mrv_session`),
the role checks, and the login/logout form handlers.

Roles: admin (everything), operator (reads, regenerates reports), verifier (reads only).

CSRF: the session cookie is HttpOnly and SameSite=Strict, so a browser does not send it with a request
another site starts; in addition every state-changing request (not GET/HEAD/OPTIONS) authenticated by
the cookie, and every login, must carry an `Origin` (or, without one, `Referer`) whose host:port is the
request's own `Host`; otherwise 403. Bearer tokens are never sent by a browser on its own, so requests
authenticated by a token need no such check.

Password guessing: failed logins are throttled per user name and per client address (throttle.py, limits in
the configuration); a throttled login is refused before its password is checked. API tokens need no
throttle: they are 256-bit random values.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated
from urllib.parse import urlencode, urlsplit

import psycopg
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from fastapi.security import APIKeyCookie, HTTPBearer

from mrv_engine.console import users
from mrv_engine.console.config import ConsoleConfig
from mrv_engine.console.deps import get_config, get_conn, get_pool
from mrv_engine.console.throttle import LoginThrottle, minutes
from mrv_engine.console.users import Principal, Role

__all__ = ["SESSION_COOKIE", "Principal", "Role", "check_same_origin", "page_principal", "require_admin",
           "require_operator", "require_reader", "router", "safe_next"]

log = logging.getLogger(__name__)

SESSION_COOKIE = "mrv_session"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Declared for the OpenAPI schema (security schemes); the checks themselves read the request below.
_bearer_scheme = HTTPBearer(auto_error=False, description="API token: `mrv console token create USER`")
_cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="login session (POST /login)")

router = APIRouter(tags=["login"])


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def same_origin(request: Request) -> bool:
    """The request names itself as its origin (Origin, else Referer): a page of this console sent it."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc.lower() == request.headers.get("host", "").lower()


def check_same_origin(request: Request) -> None:
    """403 for a state-changing request that another site may have started (see the module docstring)."""
    if request.method not in _SAFE_METHODS and not same_origin(request):
        raise HTTPException(403, "cross-origin request refused: Origin does not match this console")


def authenticate(request: Request, conn: psycopg.Connection) -> Principal | None:
    """The principal of the request's credentials; None when there are none; 401 when they are invalid."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        principal = users.principal_for_token(conn, token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            raise _unauthorized("invalid, revoked or expired API token")
        return principal
    session = request.cookies.get(SESSION_COOKIE)
    if session is None:
        return None
    principal = users.principal_for_session(conn, session)
    if principal is None:
        raise _unauthorized("the session has ended: log in again")
    check_same_origin(request)
    return principal


def current_principal(request: Request, conn: Annotated[psycopg.Connection, Depends(get_conn)],
                      _bearer: Annotated[object, Depends(_bearer_scheme)] = None,
                      _cookie: Annotated[object, Depends(_cookie_scheme)] = None) -> Principal:
    principal = authenticate(request, conn)
    if principal is None:
        raise _unauthorized("authentication required: an API token (Authorization: Bearer) or a login session")
    return principal


def _require(*roles: Role):  # type: ignore[no-untyped-def]
    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, f"the {principal.role} role may not do this (needs {' or '.join(roles)})")
        return principal
    return check


require_reader = _require(Role.ADMIN, Role.OPERATOR, Role.VERIFIER)
require_operator = _require(Role.ADMIN, Role.OPERATOR)
require_admin = _require(Role.ADMIN)

Reader = Annotated[Principal, Depends(require_reader)]
Operator = Annotated[Principal, Depends(require_operator)]
Admin = Annotated[Principal, Depends(require_admin)]


def page_principal(request: Request) -> Principal | None:
    """For pages: the logged-in principal, or None (redirect to /login?next=...). Raises 403 for a
    cross-origin state-changing request (CSRF), like the API."""
    with get_pool(request).connection() as conn:
        try:
            return authenticate(request, conn)
        except HTTPException as e:
            if e.status_code == 401:
                return None
            raise


def safe_next(target: str | None) -> str:
    """A redirect target after login: a local absolute path only, never another site ("/" otherwise)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 0x20 or c == "\x7f" for c in target):
        return "/"
    return target


def _back_to_login(target: str, **query: str | int) -> RedirectResponse:
    return RedirectResponse("/login?" + urlencode(query | ({"next": target} if target != "/" else {})), status_code=303)


@router.post("/login", include_in_schema=False)
def login(request: Request, conn: Annotated[psycopg.Connection, Depends(get_conn)],
          config: Annotated[ConsoleConfig, Depends(get_config)],
          username: Annotated[str, Form(max_length=64)] = "", password: Annotated[str, Form(max_length=1024)] = "",
          next: Annotated[str | None, Form(max_length=2048)] = None) -> RedirectResponse:
    """Form login: 303 to `next` (local paths only) with the session cookie, or back to /login?error=1, or to
    /login?error=locked&minutes=N while the user name or the client address is throttled (throttle.py)."""
    check_same_origin(request)
    target = safe_next(next)
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client is not None else ""
    # Users are looked up by the exact name, so the exact name is the throttle's key too.
    if (wait_s := throttle.wait_s(username, address)) > 0:
        return _back_to_login(target, error="locked", minutes=minutes(wait_s))
    principal = users.check_password(conn, username, password)
    if principal is None:
        log.info("console login refused for user %r", username[:64])
        lockout = throttle.failed(username, address)
        wait_s = throttle.wait_s(username, address)
        if lockout.user:
            log.warning("too many failed console logins of user %r: refused for %d min", username[:64],
                        minutes(wait_s))
        if lockout.address:
            log.warning("too many failed console logins from %s: refused for %d min", address, minutes(wait_s))
        if wait_s > 0:  # say so at once rather than at the next attempt
            return _back_to_login(target, error="locked", minutes=minutes(wait_s))
        return _back_to_login(target, error="1")
    throttle.succeeded(principal.name)
    session = users.create_session(conn, principal.name, dt.timedelta(seconds=config.session_ttl_s))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, session, max_age=config.session_ttl_s, path="/", httponly=True,
                        samesite="strict", secure=config.secure_cookies)
    log.info("console login of user %r (%s)", principal.name, principal.role)
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, conn: Annotated[psycopg.Connection, Depends(get_conn)]) -> RedirectResponse:
    """End the session (in the database and the browser) and go to the login page."""
    check_same_origin(request)
    session = request.cookies.get(SESSION_COOKIE)
    if session is not None:
        users.end_session(conn, session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
