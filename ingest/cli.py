"""`mrv ingest run`: the ingest worker, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from ingest.config import ENV_PREFIX, load_config
from ingest.errors import IngestError
from ingest.worker import IngestWorker
from mrv_common.logs import configure_logging


def main(argv: list[str], prog: str = "mrv ingest") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Ingest signed envelopes from MQTT into PostgreSQL.",
        epilog=f"example: {prog} run --config ingest.toml --client-id ingest-2   "
               f"(any setting can be overridden with {ENV_PREFIX}SECTION__KEY=value)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a worker (several may share the subscription)",
                              epilog=f"example: {prog} run --config ingest.toml")
    run.add_argument("--config", type=Path, help="TOML file (default: built-in defaults and the environment)")
    run.add_argument("--client-id",
                     help="MQTT client id; fixed per worker, its persistent session lives under it")
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    if args.client_id:
        environ[f"{ENV_PREFIX}BROKER__CLIENT_ID"] = args.client_id
    try:
        config = load_config(args.config, environ)
        configure_logging(config.log_level)
        worker = IngestWorker(config)
    except IngestError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    worker.run()
    return 0
