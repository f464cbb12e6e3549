"""`mrv db migrate / status`: the schema and which storage mode is active."""

from __future__ import annotations

import argparse
import sys

import psycopg

from ingest.errors import IngestError
from ingest.migrate import StorageMode, migrate, schema_status
from mrv_common.logs import configure_logging

_CONNINFO_HELP = "libpq conninfo (default: the PG* environment variables; keep passwords in ~/.pgpass)"


def main(argv: list[str], prog: str = "mrv db") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Database schema of the ingest service.",
                                     epilog=f"example: PGHOST=localhost PGDATABASE=mrv {prog} migrate")
    commands = parser.add_subparsers(dest="command", required=True)
    mig = commands.add_parser("migrate", help="apply pending migrations",
                              epilog=f"example: {prog} migrate --conninfo 'host=db dbname=mrv'")
    mig.add_argument("--storage", choices=["auto", *StorageMode], default="auto",
                     help="auto: TimescaleDB when the extension can be used, else native partitions")
    status = commands.add_parser("status", help="schema version and storage mode",
                                 epilog=f"example: {prog} status")
    for sub in (mig, status):
        sub.add_argument("--conninfo", default="", help=_CONNINFO_HELP)
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    try:
        with psycopg.connect(args.conninfo, autocommit=True) as conn:
            if args.command == "migrate":
                applied = migrate(conn, None if args.storage == "auto" else StorageMode(args.storage))
                print(f"applied {len(applied)} migration(s)"
                      + (f": {', '.join(map(str, applied))}" if applied else ""))
            state = schema_status(conn)
    except psycopg.OperationalError as e:
        print(f"{prog}: cannot connect to PostgreSQL: {str(e).strip()}", file=sys.stderr)
        return 1
    except IngestError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    print(f"schema version {state.version} of {state.latest}"
          + (" (up to date)" if not state.pending else f" ({state.pending} pending: run `{prog} migrate`)"))
    print(f"storage mode: {state.mode.label if state.mode else 'none (not migrated)'}")
    return 0
