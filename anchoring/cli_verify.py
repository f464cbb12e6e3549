"""`mrv verify BUNDLE`: verify an evidence bundle offline; one line per item, non-zero on failure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anchoring.bundle import Bundle
from anchoring.errors import AnchoringError
from anchoring.ledger import AnchorReceipt
from anchoring.ledger.local import LocalLedger
from anchoring.verifier import ReceiptCheck, verify_bundle

_MARK = {True: "PASS", False: "FAIL", None: "SKIP"}


def _receipt_check(ledger_file: Path | None, rpc_url: str | None) -> ReceiptCheck:
    """Checks `local` receipts against `ledger_file` and `evm` ones through `rpc_url`, when given."""
    local = LocalLedger.open(ledger_file) if ledger_file is not None else None

    def check(receipt: AnchorReceipt, signed_checkpoint: bytes) -> bool:
        if receipt.ledger == "local" and local is not None:
            local.verify_receipt(receipt, signed_checkpoint)
            return True
        if receipt.ledger == "evm" and rpc_url is not None:
            from anchoring.ledger.evm import EvmLedger, contract_of  # web3 only when a chain is asked

            EvmLedger(rpc_url, contract_of(receipt)).verify_receipt(receipt, signed_checkpoint)
            return True
        return False

    return check


def main(argv: list[str], prog: str = "mrv verify") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     epilog=f"example: {prog} report-2026.bundle.json --ledger-file anchors.jsonl")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--vkey", help="the log's verifier key to trust (default: the one the bundle names)")
    parser.add_argument("--ledger-file", type=Path, help="a local ledger file to check local receipts against")
    parser.add_argument("--rpc", help="JSON-RPC URL of an EVM node to check evm receipts against")
    args = parser.parse_args(argv)
    try:
        bundle = Bundle.decode(args.bundle.read_bytes())
        report = verify_bundle(bundle, trusted_vkey=args.vkey, check_receipt=_receipt_check(args.ledger_file, args.rpc))
    except (OSError, AnchoringError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    for item in report.items:
        print(f"{_MARK[item.ok]}  {item.item}: {item.detail}")
    if not report.ok:
        names = "; ".join(item.item for item in report.failures)
        print(f"{prog}: verification FAILED: {names}", file=sys.stderr)
        return 1
    print(f"verified: {sum(i.ok is True for i in report.items)} items passed")
    return 0
