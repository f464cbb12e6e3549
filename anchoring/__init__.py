"""The Merkle log and its anchors: RFC 9162 hashing, compact ranges, proofs, C2SP checkpoints.

Pure: no I/O here. Ledger adapters, which do I/O, live in `anchoring.ledger`.
"""

from anchoring.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from anchoring.compact import CompactRange, NodeId, NodeSink, range_nodes, range_root
from anchoring.errors import (
    AnchoringError,
    BadHashSize,
    BadSignature,
    CheckpointError,
    IndexOutOfRange,
    InvalidTreeSizes,
    LedgerCorrupted,
    LedgerError,
    LedgerUnavailable,
    LogInconsistent,
    MalformedBundle,
    MalformedCheckpoint,
    MalformedKey,
    MalformedNote,
    MalformedTlogProof,
    MissingNode,
    NoteError,
    NotLogged,
    OriginMismatch,
    ProofError,
    ReceiptInvalid,
    RootMismatch,
    UnknownSigner,
    WrongProofLength,
)
from anchoring.memory_log import MemoryLog
from anchoring.note import Signer, VerifiedNote, Verifier, open_note, sign_note
from anchoring.proof import ProofPlan, consistency_plan, inclusion_plan
from anchoring.rfc6962 import EMPTY_ROOT, HASH_SIZE, leaf_hash, leaf_hashes, node_hash, node_hashes
from anchoring.tlog_proof import TlogProof
from anchoring.verify import verify_consistency, verify_inclusion

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "AnchoringError",
    "BadHashSize",
    "BadSignature",
    "Checkpoint",
    "CheckpointError",
    "CompactRange",
    "IndexOutOfRange",
    "InvalidTreeSizes",
    "LedgerCorrupted",
    "LedgerError",
    "LedgerUnavailable",
    "LogInconsistent",
    "MalformedBundle",
    "MalformedCheckpoint",
    "MalformedKey",
    "MalformedNote",
    "MalformedTlogProof",
    "MemoryLog",
    "MissingNode",
    "NodeId",
    "NodeSink",
    "NotLogged",
    "NoteError",
    "OriginMismatch",
    "ProofError",
    "ProofPlan",
    "ReceiptInvalid",
    "RootMismatch",
    "Signer",
    "TlogProof",
    "UnknownSigner",
    "VerifiedNote",
    "Verifier",
    "WrongProofLength",
    "consistency_plan",
    "inclusion_plan",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "node_hashes",
    "open_checkpoint",
    "open_note",
    "range_nodes",
    "range_root",
    "sign_checkpoint",
    "sign_note",
    "verify_consistency",
    "verify_inclusion",
]
