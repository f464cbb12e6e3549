"""Strict verification of RFC 9162 inclusion and consistency proofs. Pure; raises `ProofError`s.

A proof must have exactly the length its (index, size) or (size1, size2) implies, and every hash
that enters a computation must be 32 bytes. The proof is split where the path to the leaf meets
the path to the tree's last leaf: below, siblings sit left or right by the bits of the index;
above, on the right edge, only left siblings exist. This computes the same as the algorithms of
RFC 9162 sections 2.1.3.2 and 2.1.4.2, with the length checked up front.
"""

from __future__ import annotations

from collections.abc import Sequence

from anchoring.errors import BadHashSize, IndexOutOfRange, InvalidTreeSizes, RootMismatch, WrongProofLength
from anchoring.rfc6962 import HASH_SIZE, node_hash


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` leaves whose root is `root`."""
    if not 0 <= index < size:
        raise IndexOutOfRange(f"index {index} in a tree of size {size}")
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    inner, border = _split(index, size - 1)
    _check_proof(proof, inner + border)
    computed = leaf_hash
    for i, sibling in enumerate(proof[:inner]):
        computed = node_hash(sibling, computed) if (index >> i) & 1 else node_hash(computed, sibling)
    for sibling in proof[inner:]:
        computed = node_hash(sibling, computed)
    _check_match("root", computed, root)


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of `size2` leaves with `root2` extends the tree of `size1` with `root1`.

    Like transparency-dev/merkle (and its vectors), a proof from the empty tree is refused as
    meaningless, and equal sizes need an empty proof and equal roots, compared byte for byte.
    """
    if not 0 < size1 <= size2:
        raise InvalidTreeSizes(f"from size {size1} to size {size2}")
    if size1 == size2:
        _check_proof(proof, 0)
        if root1 != root2:
            raise RootMismatch(f"equal sizes but roots {root1.hex()} and {root2.hex()} differ")
        return
    _check_hash("old root", root1)
    _check_hash("new root", root2)
    # Start from the old tree's last perfect subtree, node (level, index); the proof carries its
    # hash first unless that subtree is the whole old tree.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    inner, border = _split(index, (size2 - 1) >> level)
    _check_proof(proof, (index != 0) + inner + border)
    path = proof[1:] if index else proof
    old = new = proof[0] if index else root1
    for i, sibling in enumerate(path[:inner]):
        if (index >> i) & 1:
            old, new = node_hash(sibling, old), node_hash(sibling, new)
        else:
            # A right sibling was not yet in the old tree: only the new root includes it.
            new = node_hash(new, sibling)
    for sibling in path[inner:]:
        old, new = node_hash(sibling, old), node_hash(sibling, new)
    _check_match("old root", old, root1)
    _check_match("new root", new, root2)


def _split(index: int, last: int) -> tuple[int, int]:
    """Proof lengths below and above the level where the paths to `index` and `last` meet."""
    inner = (index ^ last).bit_length()
    return inner, (index >> inner).bit_count()


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise BadHashSize(f"{what} has {len(value)} bytes")


def _check_proof(proof: Sequence[bytes], expected: int) -> None:
    if len(proof) != expected:
        raise WrongProofLength(f"got {len(proof)} hashes, expected {expected}")
    for i, value in enumerate(proof):
        _check_hash(f"proof hash {i}", value)


def _check_match(what: str, computed: bytes, expected: bytes) -> None:
    if computed != expected:
        raise RootMismatch(f"{what}: computed {computed.hex()}, expected {expected.hex()}")
