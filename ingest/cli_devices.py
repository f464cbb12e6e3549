"""`mrv devices enroll / rotate / revoke / list / ingest-account`: the device registry and the broker's
password and ACL files rendered from it (send the broker SIGHUP to reload them)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import psycopg

from ingest.broker_auth import write_broker_files, write_credential
from ingest.errors import IngestError
from ingest.registry import (
    MeterRole,
    PlantKind,
    broker_accounts,
    enroll_device,
    list_devices,
    revoke_keys,
    rotate_key,
    set_ingest_account,
)
from mrv_common.logs import configure_logging
from protocol.keys import PublicKeyRecord


def _read_record(path: Path) -> PublicKeyRecord:
    try:
        return PublicKeyRecord.from_json(path.read_text())
    except OSError as e:
        raise IngestError(f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise IngestError(f"{path}: {e}") from None


def _publish_credentials(conn: psycopg.Connection, broker_dir: Path, passwords: dict[str, str], show: bool) -> None:
    """Write each account's password file, then the broker's files once (they list every account)."""
    for username, password in passwords.items():
        path = write_credential(broker_dir / "credentials", username, password)
        print(f"broker password of {username} written to {path} (mode 0600)")
        if show:
            print(f"password: {password}")
    auth = write_broker_files(broker_accounts(conn), broker_dir)
    print(f"broker files updated: {auth.password_file}, {auth.acl_file} (SIGHUP the broker to reload)")


def _parser(prog: str) -> argparse.ArgumentParser:
    enroll_example = (f"example: {prog} enroll --project solar-1 --public-key inv-1.pub.json "
                      "--role main --kind pv --capacity-w 5000000")
    parser = argparse.ArgumentParser(prog=prog, description="Device registry, broker credentials and ACL.",
                                     epilog=enroll_example)
    commands = parser.add_subparsers(dest="command", required=True)
    enroll = commands.add_parser("enroll", help="register a device and its first key", epilog=enroll_example)
    enroll.add_argument("--project", required=True)
    enroll.add_argument("--public-key", type=Path, required=True, nargs="+",
                        help="the agents' exported PublicKeyRecord JSON files: several enrol a fleet at once, "
                             "all or none, with the same project, role, kind and capacity")
    enroll.add_argument("--role", choices=list(MeterRole), required=True)
    enroll.add_argument("--kind", choices=list(PlantKind), required=True)
    enroll.add_argument("--capacity-w", type=int, required=True, help="installed capacity in watts")
    rotate = commands.add_parser(
        "rotate", help="add a device's new key; its old keys expire",
        epilog=f"example: {prog} rotate --public-key inv-1.new.pub.json --grace-s 3600")
    rotate.add_argument("--public-key", type=Path, required=True)
    rotate.add_argument("--grace-s", type=float, default=0.0,
                        help="old keys stay valid this long "
                             "(envelopes must be signed and arrive in a key's window)")
    revoke = commands.add_parser("revoke", help="revoke a device's key (default: all its active keys)",
                                 epilog=f"example: {prog} revoke inv-1 --kid 3f2a...")
    revoke.add_argument("device")
    revoke.add_argument("--kid", help="hex key id; default all active keys of the device")
    listing = commands.add_parser("list", help="devices and their keys",
                                  epilog=f"example: {prog} list --json")
    listing.add_argument("--project")
    listing.add_argument("--json", action="store_true")
    account = commands.add_parser("ingest-account",
                                  help="create or reset the ingest service's broker account",
                                  epilog=f"example: {prog} ingest-account --name ingest")
    account.add_argument("--name", default="ingest")
    for sub in (enroll, rotate, revoke, listing, account):
        sub.add_argument("--conninfo", default="",
                         help="libpq conninfo (default: the PG* environment variables)")
    for sub in (enroll, rotate, revoke, account):
        sub.add_argument("--broker-dir", type=Path, default=Path("var/broker"),
                         help="where the broker's passwd and acl files and the credentials/ directory live")
    for sub in (enroll, account):
        sub.add_argument("--show-password", action="store_true", help="also print the generated password")
    return parser


def main(argv: list[str], prog: str = "mrv devices") -> int:
    args = _parser(prog).parse_args(argv)
    configure_logging("WARNING")
    try:
        with psycopg.connect(args.conninfo, autocommit=True) as conn:
            return _run(conn, args)
    except psycopg.OperationalError as e:
        print(f"{prog}: cannot connect to PostgreSQL: {str(e).strip()}", file=sys.stderr)
    except psycopg.errors.UndefinedTable as e:
        print(f"{prog}: the schema is missing ({str(e).strip().splitlines()[0]}): run `mrv db migrate`",
              file=sys.stderr)
    except IngestError as e:
        print(f"{prog}: {e}", file=sys.stderr)
    return 1


def _run(conn: psycopg.Connection, args: argparse.Namespace) -> int:
    if args.command == "enroll":
        records = [_read_record(path) for path in args.public_key]
        passwords = {}
        with conn.transaction():  # a refused device enrols none of the others
            for record in records:
                passwords[record.device_id] = enroll_device(
                    conn, record, project_id=args.project, role=MeterRole(args.role), kind=PlantKind(args.kind),
                    capacity_w=args.capacity_w)
        for record in records:
            print(f"enrolled {record.device_id} in {args.project} with key {record.kid.hex()}")
        _publish_credentials(conn, args.broker_dir, passwords, args.show_password)
    elif args.command == "rotate":
        record = _read_record(args.public_key)
        closed = rotate_key(conn, record, grace=dt.timedelta(seconds=args.grace_s))
        closed_text = ", ".join(k.hex() for k in closed) or "none"
        print(f"{record.device_id}: key {record.kid.hex()} active; closed {closed_text}")
        write_broker_files(broker_accounts(conn), args.broker_dir)
    elif args.command == "revoke":
        try:
            kid = bytes.fromhex(args.kid) if args.kid else None
        except ValueError:
            raise IngestError(f"--kid {args.kid!r} is not hex") from None
        revoked = revoke_keys(conn, args.device, kid)
        print(f"{args.device}: revoked {', '.join(k.hex() for k in revoked)}")
        write_broker_files(broker_accounts(conn), args.broker_dir)
    elif args.command == "ingest-account":
        _publish_credentials(conn, args.broker_dir, {args.name: set_ingest_account(conn, args.name)},
                             args.show_password)
    else:
        devices = list_devices(conn, args.project)
        if args.json:
            print(json.dumps([{
                "device_id": d.device_id, "project_id": d.project_id, "role": d.role.value,
                "kind": d.kind.value, "capacity_w": d.capacity_w, "enrolled_at": d.enrolled_at.isoformat(),
                "keys": [{"kid": k.kid.hex(), "status": k.status.value,
                          "valid_from": k.valid_from.isoformat(),
                          "valid_until": k.valid_until.isoformat() if k.valid_until else None,
                          "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None} for k in d.keys],
            } for d in devices], indent=2))
        else:
            now = dt.datetime.now(dt.UTC)
            for d in devices:
                current = [k.kid.hex() for k in d.keys
                           if k.status == "active" and (k.valid_until is None or k.valid_until > now)]
                print(f"{d.project_id}/{d.device_id}  {d.role.value:5} {d.kind.value:5} {d.capacity_w} W  "
                      f"keys: {len(d.keys)}, current: {', '.join(current) or '-'}")
    return 0
