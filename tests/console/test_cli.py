"""`mrv console user / token`: the secrets are printed once and work; the database keeps only hashes."""

from __future__ import annotations

import io
import subprocess
import sys

import psycopg
import pytest

from mrv_engine.console import users
from mrv_engine.console.cli import main
from tests.console.conftest import REPO

pytestmark = pytest.mark.integration


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_users_and_tokens_from_the_command_line(console_db: str, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    db = ("--conninfo", console_db)
    code, out = _run(capsys, "user", "add", "carol", "--role", "operator", *db)
    assert code == 0 and "password: " in out
    generated = out.split("password: ")[1].strip()

    monkeypatch.setattr("sys.stdin", io.StringIO("chosen-password-9\n"))
    code, out = _run(capsys, "user", "add", "dave", "--role", "verifier", "--password-stdin", *db)
    assert code == 0 and "password:" not in out  # given, so not echoed
    code, out = _run(capsys, "user", "add", "carol", "--role", "admin", *db)
    assert code == 1 and "exists already" in out

    code, out = _run(capsys, "token", "create", "carol", "--label", "ci", *db)
    token = out.strip().splitlines()[-1]
    assert code == 0 and token.startswith("mrv_")
    assert _run(capsys, "token", "create", "nobody", *db)[0] == 1

    with psycopg.connect(console_db, autocommit=True) as conn:
        assert users.check_password(conn, "carol", generated) == users.Principal("carol", users.Role.OPERATOR)
        assert users.check_password(conn, "dave", "chosen-password-9") is not None
        assert users.principal_for_token(conn, token) == users.Principal("carol", users.Role.OPERATOR)
        dump = str(conn.execute("SELECT * FROM console_users").fetchall()) + \
            str(conn.execute("SELECT * FROM console_tokens").fetchall())
        assert generated not in dump and "chosen-password-9" not in dump and token not in dump

        listed = _run(capsys, "token", "list", "--user", "carol", *db)[1]
        assert "ci" in listed and token not in listed
        token_id = listed.split()[0]
        assert _run(capsys, "token", "revoke", token_id, *db)[0] == 0
        assert users.principal_for_token(conn, token) is None
        assert _run(capsys, "token", "revoke", token_id, *db)[0] == 1  # already revoked


def test_mrv_console_is_wired_into_the_mrv_command() -> None:
    result = subprocess.run([sys.executable, "-m", "mrv_cli", "console", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "serve" in result.stdout and "token" in result.stdout
