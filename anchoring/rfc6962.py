"""RFC 9162 (RFC 6962) Merkle tree hashing with SHA-256.

Leaves and interior nodes are hashed with distinct one-byte prefixes so that no leaf can be
passed off as a node (second-preimage resistance of the tree).
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha256
from typing import Final

HASH_SIZE: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = sha256(b"").digest()
"""The root of the tree with no leaves: SHA-256 of the empty string (RFC 9162 section 2.1.1)."""

# Each hash starts from a clone of a context that has already absorbed the prefix: cloning costs
# less than building a hash object and a prefixed copy of the input, and a log of n leaves makes
# 2n - 1 of these calls (target P3). The two contexts are never updated, so sharing them is safe.
_LEAF_CONTEXT: Final = sha256(LEAF_PREFIX)
_NODE_CONTEXT: Final = sha256(NODE_PREFIX)


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """SHA-256(0x00 || entry) for each entry: the leaf hashes of many log entries in one call."""
    copy = _LEAF_CONTEXT.copy
    hashes = []
    for data in entries:
        h = copy()
        h.update(data)
        hashes.append(h.digest())
    return hashes


def node_hashes(lefts: Iterable[bytes], rights: Iterable[bytes]) -> list[bytes]:
    """SHA-256(0x01 || left || right) for each pair: many interior nodes in one call."""
    copy = _NODE_CONTEXT.copy
    hashes = []
    for left, right in zip(lefts, rights, strict=True):
        h = copy()
        h.update(left)
        h.update(right)
        hashes.append(h.digest())
    return hashes


def node_hashes_packed(pairs: bytes) -> list[bytes]:
    """SHA-256(0x01 || pairs[64i : 64i + 64]) for each i: the parents of adjacent hashes packed in one
    buffer (a stored tile), without splitting it into separate left and right hashes first."""
    copy = _NODE_CONTEXT.copy
    hashes = []
    for start in range(0, len(pairs), 2 * HASH_SIZE):
        h = copy()
        h.update(pairs[start : start + 2 * HASH_SIZE])
        hashes.append(h.digest())
    return hashes


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry."""
    return leaf_hashes((data,))[0]


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return node_hashes((left,), (right,))[0]
