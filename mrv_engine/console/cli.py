"""`mrv console`: serve the operator console; manage its users and API tokens.

    mrv console serve --config console.toml
    mrv console user add alice --role operator            # prints a generated password once
    echo "$PW" | mrv console user add bob --role verifier --password-stdin
    mrv console token create alice --label ci             # prints the token once
    mrv console token revoke 3                            # or: --user alice (every token of alice)

The database comes from the configuration's conninfo (or --conninfo), else the PG* variables; apply the
schema first with `mrv db migrate`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import psycopg

from mrv_engine.console import users
from mrv_engine.console.config import ConsoleConfigError, load_config


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="console configuration (TOML); see console.example.toml")
    common.add_argument("--conninfo", help="PostgreSQL conninfo (overrides the configuration)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", parents=[common], help="run the console (uvicorn)")
    serve.add_argument("--host", help="address to listen on (default from the configuration: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default from the configuration: 8700)")

    user = commands.add_parser("user", help="console users").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", parents=[common], help="add a user; prints a generated password once")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in users.Role], required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--no-password", action="store_true", help="no login: API tokens only")
    passwd = user.add_parser("passwd", parents=[common], help="set a new password (ends the user's sessions)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    remove = user.add_parser("remove", parents=[common], help="remove a user, their tokens and sessions")
    remove.add_argument("name")
    user.add_parser("list", parents=[common], help="list users")

    token = commands.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    create = token.add_parser("create", parents=[common], help="a new token of USER; printed once")
    create.add_argument("name", metavar="USER")
    create.add_argument("--label", default="", help="what the token is for")
    create.add_argument("--expires-days", type=int, help="expire after this many days (default: never)")
    revoke = token.add_parser("revoke", parents=[common], help="revoke a token by id, or every token of a user")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, help="token id (from `token list`)")
    which.add_argument("--user", help="revoke every active token of this user")
    listing = token.add_parser("list", parents=[common], help="list tokens (never their values)")
    listing.add_argument("--user")
    return parser


def _password(from_stdin: bool) -> tuple[str, bool]:
    """(password, generated)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    return users.new_password(), True


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mrv_engine.console.app import create_app

    config = load_config(args.config, conninfo=args.conninfo, host=args.host, port=args.port)
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info",
                proxy_headers=False, server_header=False)
    return 0


def _accounts(args: argparse.Namespace) -> int:
    config = load_config(args.config, conninfo=args.conninfo)
    with psycopg.connect(config.conninfo, autocommit=True) as conn:
        if args.command == "user" and args.action == "add":
            password, generated = (None, False) if args.no_password else _password(args.password_stdin)
            users.add_user(conn, args.name, users.Role(args.role), password)
            print(f"user {args.name} added ({args.role})")
            if generated:
                print(f"password: {password}")
        elif args.command == "user" and args.action == "passwd":
            password, generated = _password(args.password_stdin)
            users.set_password(conn, args.name, password)
            print(f"password of {args.name} set; their sessions ended")
            if generated:
                print(f"password: {password}")
        elif args.command == "user" and args.action == "remove":
            users.delete_user(conn, args.name)
            print(f"user {args.name} removed")
        elif args.command == "user":
            for u in users.list_users(conn):
                print(f"{u.name}\t{u.role}\t{'login' if u.has_password else 'tokens only'}\t"
                      f"{u.active_tokens} active token(s)")
        elif args.action == "create":
            expires = None if args.expires_days is None else dt.timedelta(days=args.expires_days)
            token_id, token = users.create_token(conn, args.name, args.label, expires)
            print(f"token {token_id} of {args.name} (shown once, keep it secret):\n{token}")
        elif args.action == "revoke" and args.user:
            print(f"{users.revoke_user_tokens(conn, args.user)} token(s) of {args.user} revoked")
        elif args.action == "revoke":
            users.revoke_token(conn, args.id)
            print(f"token {args.id} revoked")
        else:
            for t in users.list_tokens(conn, args.user):
                state = "revoked" if t.revoked_at else ("expires " + t.expires_at.isoformat() if t.expires_at
                                                        else "active")
                print(f"{t.id}\t{t.user}\t{t.label}\t{state}\tlast used {t.last_used_at or 'never'}")
    return 0


def main(argv: list[str], prog: str = "mrv console") -> int:
    args = _parser(prog).parse_args(argv)
    try:
        return _serve(args) if args.command == "serve" else _accounts(args)
    except (ConsoleConfigError, users.AccountError, psycopg.Error, OSError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"{prog}: {message}", file=sys.stderr)
        return 1
