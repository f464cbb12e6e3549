"""Every failure the anchoring package reports: one class per reason, each with a stable code.

The codes are what the verifier prints and what operators search logs for, so they never change
meaning. These errors are about bad data from outside (a proof, a note, a ledger file) or a failed
ledger; misuse by a caller (a negative size, a 31-byte leaf hash handed to the log) stays
`ValueError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar


class AnchoringError(Exception):
    """Base class. `code` is stable; `message` is one line for humans; `detail` says what exactly."""

    code: ClassVar[str] = "anchoring.error"
    message: ClassVar[str] = "anchoring failed"

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(f"{self.code}: {self.message}" + (f" ({detail})" if detail else ""))


class ProofError(AnchoringError):
    code = "proof.invalid"
    message = "the Merkle proof does not verify"


class IndexOutOfRange(ProofError):
    code = "proof.index_out_of_range"
    message = "the leaf index lies outside the tree"


class InvalidTreeSizes(ProofError):
    code = "proof.tree_sizes"
    message = "no consistency proof exists between these tree sizes"


class WrongProofLength(ProofError):
    code = "proof.length"
    message = "the proof has the wrong number of hashes for this index and tree size"


class BadHashSize(ProofError):
    code = "proof.hash_size"
    message = "a hash is not 32 bytes long"


class RootMismatch(ProofError):
    code = "proof.root_mismatch"
    message = "the proof does not lead to the expected root hash"


class MissingNode(AnchoringError):
    code = "store.missing_node"
    message = "the node store lacks a hash that the proof needs"


class NoteError(AnchoringError):
    code = "note.invalid"
    message = "the signed note is not acceptable"


class MalformedNote(NoteError):
    code = "note.malformed"
    message = "the signed note is not well-formed"


class UnknownSigner(NoteError):
    code = "note.unknown_signer"
    message = "the note carries no signature from a trusted key"


class BadSignature(NoteError):
    code = "note.bad_signature"
    message = "a signature from a trusted key does not verify"


class MalformedKey(NoteError):
    code = "note.malformed_key"
    message = "the note key string is not well-formed"


class CheckpointError(AnchoringError):
    code = "checkpoint.invalid"
    message = "the checkpoint is not acceptable"


class MalformedCheckpoint(CheckpointError):
    code = "checkpoint.malformed"
    message = "the checkpoint text is not well-formed"


class OriginMismatch(CheckpointError):
    code = "checkpoint.origin_mismatch"
    message = "the checkpoint comes from a different log"


class MalformedTlogProof(AnchoringError):
    code = "tlog_proof.malformed"
    message = "the tlog-proof is not well-formed"


class LedgerError(AnchoringError):
    code = "ledger.error"
    message = "the ledger operation failed"


class LedgerUnavailable(LedgerError):
    code = "ledger.unavailable"
    message = "the ledger could not be read or written"


class LedgerCorrupted(LedgerError):
    """The ledger's hash chain is broken; `path` and `line` (1-based) name the first bad record."""

    code = "ledger.corrupted"
    message = "the ledger is broken or was edited"

    def __init__(self, detail: str, *, path: Path, line: int) -> None:
        self.path = path
        self.line = line
        super().__init__(f"{path} line {line}: {detail}")


class ReceiptInvalid(LedgerError):
    code = "ledger.receipt_invalid"
    message = "the anchor receipt does not match the ledger"


class LogInconsistent(AnchoringError):
    """The stored log does not extend its last signed checkpoint, or changed under the sequencer."""

    code = "log.inconsistent"
    message = "the stored log is not consistent with its signed history"


class MalformedBundle(AnchoringError):
    code = "bundle.malformed"
    message = "the evidence bundle is not well-formed"


class NotLogged(AnchoringError):
    code = "log.not_logged"
    message = "the envelope is not in the log, or no checkpoint covers it yet"
