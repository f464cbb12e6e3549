"""`mrv anchor keygen / run / status`: the log key, the sequencer, and the log's state."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import psycopg

from anchoring.errors import AnchoringError
from anchoring.keyfile import read_log_key, write_log_key
from anchoring.ledger import Ledger
from anchoring.ledger.local import LocalLedger
from anchoring.note import Signer
from anchoring.sequencer import Sequencer, SequencerConfig, log_status
from mrv_common.logs import configure_logging

ARTIFACT = Path(__file__).resolve().parent / "ledger" / "CheckpointAnchor.json"  # built by contracts/compile.py
_CONNINFO_HELP = "libpq conninfo (default: the PG* environment variables; keep passwords in ~/.pgpass)"


def open_ledger(spec: str, *, contract: str | None = None, account: str | None = None, key_file: Path | None = None,
                confirmations: int = 1) -> tuple[str, Callable[[], Ledger]]:
    """(kind, opener) for a ledger given as `local:PATH` or `evm:RPC_URL` (with `contract`; the
    transactions are sent by the node from `account`, or signed with the key in `key_file`)."""
    kind, _, where = spec.partition(":")
    if kind == "local" and where:
        path = Path(where)
        return kind, lambda: LocalLedger.open(path, create=True)
    if kind == "evm" and where and contract:
        from anchoring.ledger.evm import EvmLedger, read_account_key  # web3 only when an EVM ledger is used

        key = None if key_file is None else read_account_key(key_file)
        ledger = EvmLedger(where, contract, account=account, key=key, confirmations=confirmations)
        return kind, lambda: ledger
    raise ValueError(f"unknown ledger {spec!r}: expected local:PATH, or evm:RPC_URL with --evm-contract")


def _sender_options(command: argparse.ArgumentParser) -> None:
    sender = command.add_mutually_exclusive_group()
    sender.add_argument("--evm-account", help="sending account, unlocked in the node (default: its first)")
    sender.add_argument("--evm-key", type=Path, help="file (0600) holding the sending account's private key in hex; "
                        "transactions are signed here and sent raw (the account that deploys owns the contract)")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="The Merkle log's sequencer, checkpoints and anchors.",
                                     epilog=f"example: {prog} run --log-key log.key --ledger local:anchors.jsonl")
    commands = parser.add_subparsers(dest="command", required=True)
    keygen = commands.add_parser("keygen", help="create the log's signing key (file 0600); prints its vkey",
                                 epilog=f"example: {prog} keygen --log-key log.key --origin example.org/mrv")
    keygen.add_argument("--log-key", type=Path, required=True, help="file to create")
    keygen.add_argument("--origin", required=True, help="the log's origin line, also the key's name")
    run = commands.add_parser("run", help="sequence envelopes, sign checkpoints, anchor them",
                              epilog=f"example: {prog} run --once --log-key log.key --ledger local:anchors.jsonl")
    run.add_argument("--log-key", type=Path, required=True, help="the signing key file from keygen")
    run.add_argument("--origin", help="checkpoint origin (default: the key's name)")
    run.add_argument("--ledger", required=True, help="local:PATH or evm:RPC_URL")
    run.add_argument("--evm-contract", help="address of the CheckpointAnchor contract (evm ledger)")
    _sender_options(run)
    run.add_argument("--confirmations", type=int, default=1, help="blocks before an evm anchor is confirmed")
    run.add_argument("--once", action="store_true",
                     help="log every committed envelope, anchor the latest checkpoint, exit")
    run.add_argument("--batch", type=int, default=10_000, help="most envelopes per transaction")
    run.add_argument("--poll", type=float, default=1.0, help="seconds between looks for new envelopes")
    run.add_argument("--anchor-every", type=float, default=60.0, help="anchor after this many seconds")
    run.add_argument("--anchor-leaves", type=int, default=10_000, help="... or after this many new leaves")
    run.add_argument("--log-level", default="INFO")
    deploy = commands.add_parser("deploy", help="deploy the CheckpointAnchor contract; prints its address",
                                 epilog=f"example: {prog} deploy --rpc http://127.0.0.1:8545")
    deploy.add_argument("--rpc", required=True, help="JSON-RPC URL of the EVM node")
    deploy.add_argument("--artifact", type=Path, default=ARTIFACT, help="compiled contract (JSON)")
    _sender_options(deploy)
    status = commands.add_parser("status", help="log size, latest checkpoint, backlog, anchors (JSON)",
                                 epilog=f"example: {prog} status")
    for sub in (run, status):
        sub.add_argument("--conninfo", default="", help=_CONNINFO_HELP)
    return parser


def _run(args: argparse.Namespace) -> None:
    signer = read_log_key(args.log_key)
    kind, opener = open_ledger(args.ledger, contract=args.evm_contract, account=args.evm_account,
                               key_file=args.evm_key, confirmations=args.confirmations)
    config = SequencerConfig(args.conninfo, signer, args.origin or signer.name, kind, batch=args.batch,
                             poll_seconds=args.poll, anchor_every_seconds=args.anchor_every,
                             anchor_every_leaves=args.anchor_leaves)
    sequencer = Sequencer(config, opener)

    def stop(signum: int, frame: FrameType | None) -> None:
        sequencer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sequencer.run(once=args.once)


def main(argv: list[str], prog: str = "mrv anchor") -> int:
    args = _parser(prog).parse_args(argv)
    try:
        if args.command == "keygen":
            signer = Signer.generate(args.origin)
            write_log_key(args.log_key, signer)
            print(signer.verifier.vkey)
            return 0
        if args.command == "deploy":
            from anchoring.ledger.evm import deploy, read_account_key

            key = None if args.evm_key is None else read_account_key(args.evm_key)
            print(deploy(args.rpc, args.artifact, args.evm_account, key=key))
            return 0
        if args.command == "status":
            with psycopg.connect(args.conninfo, autocommit=True) as conn:
                print(json.dumps(log_status(conn), indent=2))
            return 0
        configure_logging(args.log_level)
        _run(args)
    except psycopg.Error as e:
        print(f"{prog}: database: {str(e).strip()}", file=sys.stderr)
        return 1
    except (AnchoringError, OSError, ValueError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    return 0
