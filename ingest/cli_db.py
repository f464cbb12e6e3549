"""`mrv db migrate / status / refresh-rollups`: the schema, which storage mode is active, and the packed
rollups that monitoring reports read (ingest/migrations/0005_rollups.sql, 0007_reading_frames.sql)."""

from __future__ import annotations

import argparse
import sys
import time

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
    refresh = commands.add_parser(
        "refresh-rollups", help="pack the ended days touched since the last refresh",
        description="The ingest workers do this every [rollups] interval_s, and `mrv report` before reading; "
                    "run it here, or from a timer (--every), where the workers do not. A day is packed once "
                    "it has ended (UTC); until then reports read its raw rows.",
        epilog=f"example: {prog} refresh-rollups --every 900")
    refresh.add_argument("--every", type=float, metavar="SECONDS",
                         help="keep refreshing, this long apart, until interrupted")
    for sub in (mig, status, refresh):
        sub.add_argument("--conninfo", default="", help=_CONNINFO_HELP)
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    try:
        with psycopg.connect(args.conninfo, autocommit=True) as conn:
            if args.command == "refresh-rollups":
                return _refresh_rollups(conn, args.every)
            if args.command == "migrate":
                applied = migrate(conn, None if args.storage == "auto" else StorageMode(args.storage))
                print(f"applied {len(applied)} migration(s)"
                      + (f": {', '.join(map(str, applied))}" if applied else ""))
            state = schema_status(conn)
    except psycopg.OperationalError as e:
        print(f"{prog}: cannot connect to PostgreSQL: {str(e).strip()}", file=sys.stderr)
        return 1
    except psycopg.errors.ReadOnlySqlTransaction:
        print(f"{prog}: the server refuses writes (a hot standby?): run `{args.command}` against the primary",
              file=sys.stderr)
        return 1
    except IngestError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    print(f"schema version {state.version} of {state.latest}"
          + (" (up to date)" if not state.pending else f" ({state.pending} pending: run `{prog} migrate`)"))
    print(f"storage mode: {state.mode.label if state.mode else 'none (not migrated)'}")
    return 0


def _refresh_rollups(conn: psycopg.Connection, every_s: float | None) -> int:
    try:
        while True:
            began = time.monotonic()
            row = conn.execute("SELECT refresh_rollups()").fetchone()
            print(f"packed {row[0] if row else 0} device-day(s) of readings in {time.monotonic() - began:.1f} s",
                  flush=True)
            if every_s is None:
                return 0
            time.sleep(max(every_s - (time.monotonic() - began), 0))
    except KeyboardInterrupt:  # the way to stop --every
        return 0
