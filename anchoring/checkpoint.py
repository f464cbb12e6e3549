"""C2SP checkpoints (c2sp.org/tlog-checkpoint): a log's signed tree head as a signed note.

The note text is the origin line, the tree size in decimal, the base64 root hash, and optional
non-empty extension lines, each ending in a newline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from anchoring.encoding import b64decode, b64encode
from anchoring.errors import MalformedCheckpoint, OriginMismatch
from anchoring.note import Signer, Verifier, open_note, sign_note
from anchoring.rfc6962 import HASH_SIZE

MAX_SIZE: Final = 2**64 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _check_line(what: str, line: str) -> None:
    if not line or any(c < " " for c in line):
        raise ValueError(f"the {what} must be one non-empty line without control characters")


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: at `size` leaves, the log `origin` had root `root_hash`."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line("origin", self.origin)
        if not 0 <= self.size <= MAX_SIZE:
            raise ValueError(f"tree size {self.size} is not a uint64")
        if len(self.root_hash) != HASH_SIZE:
            raise ValueError(f"the root hash must be {HASH_SIZE} bytes")
        for line in self.extensions:
            _check_line("extension line", line)

    def to_text(self) -> str:
        """The note text that the log signs."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse note text; `MalformedCheckpoint` if it is not exactly in the checkpoint format."""
        if not text.endswith("\n"):
            raise MalformedCheckpoint("the text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedCheckpoint("fewer than three lines")
        origin, size, root, *extensions = lines
        if not _DECIMAL.fullmatch(size):
            raise MalformedCheckpoint(f"tree size {size!r} is not a decimal without leading zeros")
        try:
            return cls(origin, int(size), b64decode(root), tuple(extensions))
        except ValueError as e:
            raise MalformedCheckpoint(str(e)) from None


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> bytes:
    """The checkpoint as a signed note."""
    return sign_note(checkpoint.to_text(), signer)


def open_checkpoint(signed: bytes, verifier: Verifier, *, origin: str) -> Checkpoint:
    """Verify a signed checkpoint of the log `origin` against the log's key; return its contents."""
    checkpoint = Checkpoint.from_text(open_note(signed, [verifier]).text)
    if checkpoint.origin != origin:
        raise OriginMismatch(f"expected {origin!r}, got {checkpoint.origin!r}")
    return checkpoint
