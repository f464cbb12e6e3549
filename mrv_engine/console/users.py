"""Console accounts in PostgreSQL (ingest/migrations/0006_console.sql): people, API tokens, login sessions.

Nothing secret is stored: passwords as argon2id hashes; tokens and session ids are 256-bit random values
handed out once, stored as their SHA-256 (random values need no slow hash). Functions take an autocommit
connection; each runs its statements in one transaction where it writes more than one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel

TOKEN_PREFIX = "mrv_"  # noqa: S105 - a marker, not a secret
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_hasher = PasswordHasher()
# Verified against when the user does not exist, so that a login takes as long either way.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VERIFIER = "verifier"


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


class AccountError(ValueError):
    """A refused account operation (unknown user, bad name, duplicate); the message is safe to show."""


class UserInfo(BaseModel):
    name: str
    role: Role
    has_password: bool
    created_at: dt.datetime
    active_tokens: int


class TokenInfo(BaseModel):
    id: int
    user: str
    label: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise AccountError("a user name is 1-64 letters, digits and . _ @ -, starting with a letter or digit")
    return name


def new_password() -> str:
    return secrets.token_urlsafe(18)


def add_user(conn: psycopg.Connection, name: str, role: Role, password: str | None) -> None:
    """Create a user; `password` None: token-only (no login)."""
    check_name(name)
    if password is not None and len(password) < 8:
        raise AccountError("a password has at least 8 characters")
    hashed = None if password is None else _hasher.hash(password)
    try:
        conn.execute("INSERT INTO console_users (name, role, password_hash) VALUES (%s, %s, %s)",
                     [name, role.value, hashed])
    except psycopg.errors.UniqueViolation:
        raise AccountError(f"user {name} exists already") from None


def set_password(conn: psycopg.Connection, name: str, password: str) -> None:
    """A new password; ends the user's sessions."""
    if len(password) < 8:
        raise AccountError("a password has at least 8 characters")
    with conn.transaction():
        row = conn.execute("UPDATE console_users SET password_hash = %s WHERE name = %s RETURNING 1",
                           [_hasher.hash(password), name]).fetchone()
        if row is None:
            raise AccountError(f"no user {name}")
        conn.execute("DELETE FROM console_sessions WHERE user_name = %s", [name])


def delete_user(conn: psycopg.Connection, name: str) -> None:
    """Remove a user with its tokens and sessions."""
    if conn.execute("DELETE FROM console_users WHERE name = %s RETURNING 1", [name]).fetchone() is None:
        raise AccountError(f"no user {name}")


def list_users(conn: psycopg.Connection) -> list[UserInfo]:
    rows = conn.execute(
        "SELECT u.name, u.role, u.password_hash IS NOT NULL, u.created_at, "
        "       (SELECT count(*) FROM console_tokens t WHERE t.user_name = u.name AND t.revoked_at IS NULL "
        "        AND (t.expires_at IS NULL OR t.expires_at > now())) "
        "FROM console_users u ORDER BY u.name").fetchall()
    return [UserInfo(name=n, role=Role(r), has_password=p, created_at=c, active_tokens=t) for n, r, p, c, t in rows]


def create_token(conn: psycopg.Connection, user: str, label: str = "",
                 expires_in: dt.timedelta | None = None) -> tuple[int, str]:
    """A new API token of `user`: (its id, the token). The token is shown once; only its hash is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = None if expires_in is None else dt.datetime.now(dt.UTC) + expires_in
    try:
        row = conn.execute("INSERT INTO console_tokens (token_hash, user_name, label, expires_at) "
                           "VALUES (%s, %s, %s, %s) RETURNING id", [digest(token), user, label, expires]).fetchone()
    except psycopg.errors.ForeignKeyViolation:
        raise AccountError(f"no user {user}") from None
    assert row is not None
    return int(row[0]), token


def revoke_token(conn: psycopg.Connection, token_id: int) -> None:
    row = conn.execute("UPDATE console_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL "
                       "RETURNING 1", [token_id]).fetchone()
    if row is None:
        raise AccountError(f"no active token {token_id}")


def revoke_user_tokens(conn: psycopg.Connection, user: str) -> int:
    """Revoke every active token of `user`; returns how many."""
    rows = conn.execute("UPDATE console_tokens SET revoked_at = now() WHERE user_name = %s "
                        "AND revoked_at IS NULL RETURNING id", [user]).fetchall()
    return len(rows)


def list_tokens(conn: psycopg.Connection, user: str | None = None) -> list[TokenInfo]:
    rows = conn.execute("SELECT id, user_name, label, created_at, expires_at, revoked_at, last_used_at "
                        "FROM console_tokens WHERE %s::text IS NULL OR user_name = %s ORDER BY id",
                        [user, user]).fetchall()
    return [TokenInfo(id=i, user=u, label=lb, created_at=c, expires_at=e, revoked_at=r, last_used_at=lu)
            for i, u, lb, c, e, r, lu in rows]


def principal_for_token(conn: psycopg.Connection, token: str) -> Principal | None:
    """The user of a valid (known, not revoked, not expired) token. Notes when the token
    was last used, to the minute (a write on every request would cost a commit each)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = conn.execute(
        "SELECT t.id, u.name, u.role, t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute' "
        "FROM console_tokens t JOIN console_users u ON u.name = t.user_name WHERE t.token_hash = %s "
        "AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())",
        [digest(token)]).fetchone()
    if row is None:
        return None
    token_id, name, role, stale = row
    if stale:
        conn.execute("UPDATE console_tokens SET last_used_at = now() WHERE id = %s", [token_id])
    return Principal(name, Role(role))


def check_password(conn: psycopg.Connection, name: str, password: str) -> Principal | None:
    """The user if `password` is theirs; None otherwise, in about the same time."""
    row = conn.execute("SELECT role, password_hash FROM console_users WHERE name = %s",
                       [name]).fetchone()
    hashed = row[1] if row is not None and row[1] is not None else _DUMMY_HASH
    try:
        _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row[1] is None:
        return None
    return Principal(name, Role(row[0]))


def create_session(conn: psycopg.Connection, name: str, ttl: dt.timedelta) -> str:
    """A new login session of `name`; returns the session id (the cookie value). Drops expired sessions."""
    session = secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute("DELETE FROM console_sessions WHERE expires_at <= now()")
        conn.execute("INSERT INTO console_sessions (id_hash, user_name, expires_at) VALUES (%s, %s, now() + %s)",
                     [digest(session), name, ttl])
    return session


def principal_for_session(conn: psycopg.Connection, session: str) -> Principal | None:
    row = conn.execute("SELECT u.name, u.role FROM console_sessions s JOIN console_users u ON u.name = s.user_name "
                       "WHERE s.id_hash = %s AND s.expires_at > now()",
                       [digest(session)]).fetchone()
    return None if row is None else Principal(row[0], Role(row[1]))


def end_session(conn: psycopg.Connection, session: str) -> None:
    conn.execute("DELETE FROM console_sessions WHERE id_hash = %s", [digest(session)])
