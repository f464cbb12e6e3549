"""Offline verification of an evidence bundle: one pass/fail result per item. Pure.

Checks, in order: the log key; each checkpoint's signature; each anchor receipt (through a
caller-supplied ledger check, since that is I/O); consistency between every two successive
checkpoints; and for each envelope its structure, a device key valid (inside its window and not yet
revoked) both at its signed device time and at its arrival (`received_at`), its signature, and its
inclusion in its checkpoint.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from anchoring.bundle import Bundle, BundleEnvelope, DeviceKey
from anchoring.checkpoint import Checkpoint, open_checkpoint
from anchoring.errors import AnchoringError
from anchoring.ledger import AnchorReceipt
from anchoring.note import Verifier
from anchoring.rfc6962 import leaf_hash
from anchoring.verify import verify_consistency, verify_inclusion
from protocol.envelope import parse_envelope, verify_parsed
from protocol.errors import EnvelopeError

ReceiptCheck = Callable[[AnchorReceipt, bytes], bool]
"""True if the ledger holds the signed checkpoint where the receipt says; False if it cannot check
receipts of that ledger; raises a `LedgerError` if the receipt is wrong."""


@dataclass(frozen=True)
class ItemResult:
    """`ok` is None when the item could not be checked (e.g. no ledger given for a receipt)."""

    item: str
    ok: bool | None
    detail: str


@dataclass(frozen=True)
class BundleReport:
    items: tuple[ItemResult, ...]

    @property
    def failures(self) -> tuple[ItemResult, ...]:
        return tuple(i for i in self.items if i.ok is False)

    @property
    def ok(self) -> bool:
        return not self.failures


def _device_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _window(key: DeviceKey) -> str:
    until = "open-ended" if key.valid_until is None else f"until {key.valid_until.isoformat()}"
    revoked = "" if key.revoked_at is None else f", revoked at {key.revoked_at.isoformat()}"
    return f"valid from {key.valid_from.isoformat()} {until}{revoked}"


def _check_envelope(envelope: BundleEnvelope, bundle: Bundle, checkpoints: dict[int, Checkpoint]) -> str:
    """A one-line summary if the envelope verifies; raises ValueError, EnvelopeError or AnchoringError."""
    checkpoint = checkpoints.get(envelope.checkpoint_size)
    if checkpoint is None:
        raise ValueError(f"its checkpoint (size {envelope.checkpoint_size}) is missing or did not verify")
    parsed = parse_envelope(envelope.raw)
    payload = parsed.payload
    if (payload.device_id, payload.seq) != (envelope.device_id, envelope.seq):
        raise ValueError(f"the signed payload is {payload.device_id}/{payload.seq}")
    moment = _device_time(payload.device_time_ms)
    keys = [k for k in bundle.keys if k.kid == parsed.kid and k.device_id == payload.device_id]
    if not keys:
        raise ValueError(f"no key {parsed.kid.hex()} of {payload.device_id} in the bundle")
    for what, when in (("the device time", moment), ("arrival", envelope.received_at)):
        if not keys[0].valid_at(when):
            raise ValueError(f"key {parsed.kid.hex()} was not valid at {what} {when.isoformat()} "
                             f"({_window(keys[0])})")
    verify_parsed(parsed, keys[0].public_key)
    verify_inclusion(envelope.leaf_index, checkpoint.size, leaf_hash(envelope.raw), envelope.proof,
                     checkpoint.root_hash)
    return (f"signed by key {parsed.kid.hex()} at {moment.isoformat()}, arrived {envelope.received_at.isoformat()}, "
            f"in checkpoint {checkpoint.size}")


def verify_bundle(bundle: Bundle, *, trusted_vkey: str | None = None,
                  check_receipt: ReceiptCheck | None = None) -> BundleReport:
    """Check everything in `bundle`. `trusted_vkey` pins the log key (otherwise the bundle's own
    key is used and reported as such); without `check_receipt` receipts are reported unchecked."""
    items: list[ItemResult] = []
    try:
        verifier = Verifier.from_vkey(trusted_vkey or bundle.vkey)
    except AnchoringError as e:
        return BundleReport((ItemResult("log key", False, str(e)),))
    if trusted_vkey is not None and trusted_vkey != bundle.vkey:
        items.append(ItemResult("log key", False, f"the bundle names key {bundle.vkey}, not the trusted one"))
    else:
        note = "" if trusted_vkey else " (taken from the bundle; pin it with --vkey)"
        items.append(ItemResult("log key", True if trusted_vkey else None, verifier.vkey + note))
    checkpoints: dict[int, Checkpoint] = {}
    for number, entry in enumerate(bundle.checkpoints):
        try:
            checkpoint = open_checkpoint(entry.note, verifier, origin=bundle.origin)
        except AnchoringError as e:
            items.append(ItemResult(f"checkpoint #{number}", False, str(e)))
            continue
        checkpoints[checkpoint.size] = checkpoint
        items.append(ItemResult(f"checkpoint {checkpoint.size}", True, f"root {checkpoint.root_hash.hex()}"))
        for receipt in entry.receipts:
            name = f"receipt of checkpoint {checkpoint.size} on {receipt.ledger}"
            try:
                if check_receipt is None or not check_receipt(receipt, entry.note):
                    items.append(ItemResult(name, None, f"{receipt.locator} not checked: no such ledger given"))
                else:
                    items.append(ItemResult(name, True, receipt.locator))
            except AnchoringError as e:
                items.append(ItemResult(name, False, str(e)))
    links = {(c.size1, c.size2): c.proof for c in bundle.consistency}
    sizes = sorted(checkpoints)
    for old, new in itertools.pairwise(sizes):
        name = f"consistency {old} -> {new}"
        try:
            if (old, new) not in links:
                raise ValueError("the bundle has no proof")
            a, b = checkpoints[old], checkpoints[new]
            verify_consistency(old, new, links[old, new], a.root_hash, b.root_hash)
            items.append(ItemResult(name, True, "checkpoint extends the earlier one"))
        except (ValueError, AnchoringError) as e:
            items.append(ItemResult(name, False, str(e)))
    for envelope in bundle.envelopes:
        try:
            items.append(ItemResult(envelope.name, True, _check_envelope(envelope, bundle, checkpoints)))
        except (ValueError, EnvelopeError, AnchoringError) as e:
            items.append(ItemResult(envelope.name, False, str(e)))
    return BundleReport(tuple(items))
