"""Ledgers that anchor signed checkpoints outside the log, and the receipts they return.

Each adapter lives in its own module (`anchoring.ledger.local`, later `evm`, ...) so that importing
this package pulls in no adapter's dependencies. Adapters raise only `LedgerError`s: they convert
foreign exceptions (I/O, RPC) once, in their public methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class AnchorReceipt:
    """Where a ledger recorded a signed checkpoint.

    `locator` is in the ledger's own terms (for `local`: "<seq>:<record SHA-256 hex>") and is only
    interpreted by that ledger's `verify_receipt`.
    """

    ledger: str
    locator: str
    checkpoint_sha256: bytes
    anchored_at: datetime


class Ledger(Protocol):
    """An append-only place to publish signed checkpoints."""

    def publish(self, signed_checkpoint: bytes) -> AnchorReceipt:
        """Record the signed checkpoint note; return where it was recorded."""
        ...

    def lookup(self, signed_checkpoint: bytes) -> AnchorReceipt | None:
        """The receipt of the earliest record of this signed checkpoint, or None."""
        ...

    def verify_receipt(self, receipt: AnchorReceipt, signed_checkpoint: bytes) -> None:
        """Check that the ledger holds `signed_checkpoint` where `receipt` says; `ReceiptInvalid` if not."""
        ...


__all__ = ["AnchorReceipt", "Ledger"]
