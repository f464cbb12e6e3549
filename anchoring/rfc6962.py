"""RFC 9162 (RFC 6962) Merkle tree hashing with SHA-256.

Leaves and interior nodes are hashed with distinct one-byte prefixes so that no leaf can be
passed off as a node (second-preimage resistance of the tree).
"""

from __future__ import annotations

from hashlib import sha256
from typing import Final

HASH_SIZE: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = sha256(b"").digest()
"""The root of the tree with no leaves: SHA-256 of the empty string (RFC 9162 section 2.1.1)."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry."""
    return sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return sha256(NODE_PREFIX + left + right).digest()
