"""C2SP tlog-proof (c2sp.org/tlog-proof@v1): an offline-verifiable proof that an entry is logged.

The text form, one item per line:

    c2sp.org/tlog-proof@v1
    extra <base64 opaque data>        (optional, not authenticated)
    index <decimal leaf index>
    <base64 inclusion proof hash>     (zero or more, from the leaf's sibling upwards)

    <signed checkpoint note, verbatim>
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from anchoring.checkpoint import MAX_SIZE, Checkpoint, open_checkpoint
from anchoring.encoding import b64decode, b64encode
from anchoring.errors import MalformedTlogProof
from anchoring.note import Verifier
from anchoring.rfc6962 import HASH_SIZE
from anchoring.verify import verify_inclusion

HEADER: Final = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]*)")


@dataclass(frozen=True)
class TlogProof:
    """A parsed, not yet verified, tlog-proof."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.index < MAX_SIZE:
            raise ValueError(f"leaf index {self.index} is not a uint64")
        if any(len(h) != HASH_SIZE for h in self.hashes):
            raise ValueError(f"every proof hash must be {HASH_SIZE} bytes")

    def encode(self) -> bytes:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines += (b64encode(h) for h in self.hashes)
        return "".join(f"{line}\n" for line in lines).encode() + b"\n" + self.checkpoint

    @classmethod
    def parse(cls, data: bytes) -> TlogProof:
        """Parse the text form; `MalformedTlogProof` unless it is exactly in the format."""
        head, blank, checkpoint = data.partition(b"\n\n")
        if not blank or not checkpoint:
            raise MalformedTlogProof("no blank line followed by a checkpoint")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError:
            raise MalformedTlogProof("the proof lines are not ASCII") from None
        if lines[0] != HEADER:
            raise MalformedTlogProof(f"the first line is not {HEADER}")
        lines.pop(0)
        try:
            extra = b64decode(lines.pop(0)[len("extra ") :]) if lines[0].startswith("extra ") else None
            index = _INDEX.fullmatch(lines.pop(0))
            if index is None:
                raise ValueError("expected 'index <decimal without leading zeros>'")
            return cls(int(index[1]), tuple(b64decode(line) for line in lines), checkpoint, extra)
        except IndexError:
            raise MalformedTlogProof("the index line is missing") from None
        except ValueError as e:
            raise MalformedTlogProof(str(e)) from None

    def verify(self, leaf_hash: bytes, verifier: Verifier, *, origin: str) -> Checkpoint:
        """Verify the checkpoint's signature and the leaf's inclusion in it; return the checkpoint.

        `extra` stays unauthenticated: callers must not trust it without their own checks.
        """
        checkpoint = open_checkpoint(self.checkpoint, verifier, origin=origin)
        verify_inclusion(self.index, checkpoint.size, leaf_hash, self.hashes, checkpoint.root_hash)
        return checkpoint
