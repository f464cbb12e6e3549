"""Ledgers that anchor signed checkpoints outside the log, and the receipts they return.

Each adapter lives in its own module (`anchoring.ledger.local`, later `evm`, ...) so that importing
this package pulls in no adapter's dependencies. Adapters raise only `LedgerError`s: they convert
foreign exceptions (I/O, RPC) once, in their public methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from anchoring.errors import ReceiptInvalid


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

    def to_json(self) -> dict[str, str]:
        """A JSON object of strings (hex hash, ISO 8601 time); `from_json` reads it back."""
        return {
            "ledger": self.ledger,
            "locator": self.locator,
            "checkpoint_sha256": self.checkpoint_sha256.hex(),
            "anchored_at": self.anchored_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: object) -> AnchorReceipt:
        """Parse `to_json` output; `ReceiptInvalid` if it is not exactly that shape."""
        fields = ("ledger", "locator", "checkpoint_sha256", "anchored_at")
        if not (isinstance(data, dict) and sorted(data) == sorted(fields)
                and all(isinstance(data[f], str) for f in fields)):
            raise ReceiptInvalid(f"a receipt is a JSON object of the strings {', '.join(fields)}")
        try:
            digest = bytes.fromhex(data["checkpoint_sha256"])
            moment = datetime.fromisoformat(data["anchored_at"])
        except ValueError as e:
            raise ReceiptInvalid(str(e)) from None
        if len(digest) != 32 or moment.tzinfo is None:
            raise ReceiptInvalid("the checkpoint hash has 32 bytes and the time a UTC offset")
        return cls(data["ledger"], data["locator"], digest, moment)


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
