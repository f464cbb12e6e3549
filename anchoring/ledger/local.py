"""The `local` ledger: an append-only, hash-chained JSON-lines file of signed checkpoints.

One record per line, canonical JSON (sorted keys, no spaces, ASCII):

    {"checkpoint":"<signed note>","prev":"<SHA-256 hex of the previous line>","seq":0,"time":"...Z"}

`prev` of the first record is 64 zeros; a line's hash covers its bytes without the newline.
Opening the file verifies the whole chain, so an edited, removed or reordered record is refused
with the line that breaks it. The chain cannot protect the last line by itself: the receipt
carries that record's hash, so `verify_receipt` catches an edit there too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from anchoring.errors import LedgerCorrupted, LedgerError, LedgerUnavailable, ReceiptInvalid
from anchoring.ledger import AnchorReceipt

KIND: Final = "local"
GENESIS: Final = "0" * 64
_FIELDS: Final = {"checkpoint", "prev", "seq", "time"}
_LOCATOR = re.compile(r"(0|[1-9][0-9]*):([0-9a-f]{64})")


def _now() -> datetime:
    return datetime.now(UTC)


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode(record: dict[str, object]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True)
class _Entry:
    record_sha256: bytes
    checkpoint_sha256: bytes
    time: datetime


class LocalLedger:
    """A `Ledger` kept in one file. One writer at a time: appends take an exclusive file lock."""

    def __init__(self, path: Path, entries: list[_Entry], end: int, clock: Callable[[], datetime]) -> None:
        """Use `LocalLedger.open`."""
        self._path = path
        self._entries = entries
        self._end = end  # the file's size as far as this instance knows
        self._clock = clock
        self._by_checkpoint: dict[bytes, int] = {}
        for seq, entry in enumerate(entries):
            self._by_checkpoint.setdefault(entry.checkpoint_sha256, seq)

    @classmethod
    def open(cls, path: Path, *, create: bool = False, clock: Callable[[], datetime] = _now) -> LocalLedger:
        """Read and verify the whole file; with `create`, start an empty ledger if it is missing."""
        try:
            if create and not path.exists():
                _create(path)
            data = path.read_bytes()
        except OSError as e:
            raise LedgerUnavailable(f"{path}: {e.strerror or e}") from e
        return cls(path, _verify_chain(path, data), len(data), clock)

    @property
    def path(self) -> Path:
        return self._path

    def __len__(self) -> int:
        return len(self._entries)

    def publish(self, signed_checkpoint: bytes) -> AnchorReceipt:
        """Append a record and fsync it; every call appends, even for a checkpoint already here.

        The signed checkpoint is a note, so UTF-8 text; other bytes are a `ValueError`.
        """
        seq = len(self._entries)
        moment = self._clock()
        line = _encode(
            {
                "checkpoint": signed_checkpoint.decode(),
                "prev": self._entries[-1].record_sha256.hex() if self._entries else GENESIS,
                "seq": seq,
                "time": _format_time(moment),
            }
        )
        try:
            self._append(line + b"\n")
        except OSError as e:
            raise LedgerUnavailable(f"{self._path}: {e.strerror or e}") from e
        entry = _Entry(
            hashlib.sha256(line).digest(),
            hashlib.sha256(signed_checkpoint).digest(),
            datetime.fromisoformat(_format_time(moment)),
        )
        self._entries.append(entry)
        self._by_checkpoint.setdefault(entry.checkpoint_sha256, seq)
        return self._receipt(seq)

    def lookup(self, signed_checkpoint: bytes) -> AnchorReceipt | None:
        seq = self._by_checkpoint.get(hashlib.sha256(signed_checkpoint).digest())
        return None if seq is None else self._receipt(seq)

    def verify_receipt(self, receipt: AnchorReceipt, signed_checkpoint: bytes) -> None:
        """Check the receipt against the records read at `open` and appended since."""
        locator = _LOCATOR.fullmatch(receipt.locator)
        if receipt.ledger != KIND or locator is None:
            raise ReceiptInvalid(f"not a {KIND} ledger receipt: {receipt.ledger} {receipt.locator}")
        seq = int(locator[1])
        if seq >= len(self._entries):
            raise ReceiptInvalid(f"{self._path} has no record {seq}")
        if self._receipt(seq) != receipt:
            raise ReceiptInvalid(f"record {seq} of {self._path} differs from the receipt")
        if hashlib.sha256(signed_checkpoint).digest() != receipt.checkpoint_sha256:
            raise ReceiptInvalid(f"record {seq} of {self._path} holds a different checkpoint")

    def _receipt(self, seq: int) -> AnchorReceipt:
        entry = self._entries[seq]
        return AnchorReceipt(KIND, f"{seq}:{entry.record_sha256.hex()}", entry.checkpoint_sha256, entry.time)

    def _append(self, data: bytes) -> None:
        import fcntl  # POSIX only; the offline verifier, which may run elsewhere, never appends

        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size != self._end:
                raise LedgerError(f"{self._path} was changed by another writer; open it again")
            os.write(fd, data)
            os.fsync(fd)
            self._end += len(data)
        finally:
            os.close(fd)


def _create(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    # Make the new directory entry durable too, or a crash could lose the whole file.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _verify_chain(path: Path, data: bytes) -> list[_Entry]:
    entries: list[_Entry] = []
    prev = GENESIS
    lines = data.split(b"\n")
    if lines.pop() != b"":
        raise LedgerCorrupted(
            "the last record is incomplete (an interrupted append?)", path=path, line=len(lines) + 1
        )
    for seq, line in enumerate(lines):
        try:
            entry = _check_record(line, seq, prev)
        except ValueError as e:
            raise LedgerCorrupted(str(e), path=path, line=seq + 1) from None
        entries.append(entry)
        prev = entry.record_sha256.hex()
    return entries


def _check_record(line: bytes, seq: int, prev: str) -> _Entry:
    """The record's entry if `line` is the canonical record `seq` chained to `prev`; else ValueError."""
    try:
        record = json.loads(line)
    except ValueError:
        raise ValueError("not a JSON record") from None
    if not isinstance(record, dict) or record.keys() != _FIELDS:
        raise ValueError(f"a record has exactly the fields {sorted(_FIELDS)}")
    checkpoint, time = record["checkpoint"], record["time"]
    if not (isinstance(checkpoint, str) and isinstance(time, str) and type(record["seq"]) is int):
        raise ValueError("a field has the wrong type")
    if _encode(record) != line:
        raise ValueError("the record is not in canonical form (edited by hand?)")
    if record["seq"] != seq:
        raise ValueError(f"seq is {record['seq']}, expected {seq} (a record was removed or moved)")
    if record["prev"] != prev:
        raise ValueError("prev does not match the previous record (it was edited, removed or moved)")
    moment = datetime.fromisoformat(time)
    if _format_time(moment) != time:
        raise ValueError(f"time {time!r} is not a UTC timestamp in milliseconds")
    return _Entry(hashlib.sha256(line).digest(), hashlib.sha256(checkpoint.encode()).digest(), moment)
