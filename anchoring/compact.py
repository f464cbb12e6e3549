"""Compact ranges: the O(log n) state from which a log appends leaves and computes its root.

Node model: node (level, index) is the root of the perfect subtree over leaves
[index * 2**level, (index + 1) * 2**level); level 0 holds the leaf hashes. Only perfect subtrees get
an id; every hash in a proof is either one of them or is folded from a few of them along the tree's
right edge (see `anchoring.proof`). `CompactRange.extend` reports each node the moment its subtree
is complete, in runs (level, first index, hashes), so a storage layer persists what it keeps
exactly once (`anchoring.store` keeps every fourth level, in tiles).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from anchoring.rfc6962 import EMPTY_ROOT, HASH_SIZE, node_hash, node_hashes


class NodeId(NamedTuple):
    """The perfect subtree at `level` whose leftmost leaf is `index * 2**level`."""

    level: int
    index: int  # type: ignore[assignment]  # shadows tuple.index: (level, index) is the usual name


NodeSink = Callable[[int, int, Sequence[bytes]], None]
"""Receives (level, first index, hashes): a run of newly completed nodes on one level."""


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """The fewest perfect subtrees that exactly cover leaves [begin, end), left to right."""
    if not 0 <= begin <= end:
        raise ValueError(f"invalid leaf range [{begin}, {end})")
    nodes = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            # A subtree must start at a multiple of its own width.
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append(NodeId(level, begin >> level))
        begin += 1 << level
    return nodes


def range_root(hashes: Sequence[bytes]) -> bytes:
    """The hash of the subtree made of adjacent perfect subtrees, given largest (leftmost) first.

    RFC 9162 splits a tree at the largest power of two, so a tree whose right part is not perfect
    hashes as node(first, node(second, ...)): fold from the right.
    """
    if not hashes:
        raise ValueError("a range needs at least one subtree hash")
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


def _check_hashes(hashes: Iterable[bytes]) -> None:
    if set(map(len, hashes)) - {HASH_SIZE}:
        raise ValueError(f"every hash must be {HASH_SIZE} bytes")


class CompactRange:
    """The leaves [0, size) of a log as the roots of their perfect subtrees, largest first.

    Restore one from storage with `CompactRange(size, [hash of n for n in range_nodes(0, size)])`.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(f"a compact range of size {size} has {max(size, 0).bit_count()} hashes")
        _check_hashes(hashes)
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The hashes of `range_nodes(0, size)`, in that order: all a storage layer must keep."""
        return tuple(self._hashes)

    def root(self) -> bytes:
        """The RFC 9162 root hash of the tree of the current size."""
        return range_root(self._hashes) if self._hashes else EMPTY_ROOT

    def append(self, leaf_hash: bytes, on_nodes: NodeSink | None = None) -> None:
        """Append one leaf hash; see `extend`."""
        self.extend((leaf_hash,), on_nodes)

    def extend(self, leaf_hashes: Sequence[bytes], on_nodes: NodeSink | None = None) -> None:
        """Append leaf hashes in order, hashing level by level.

        If given, `on_nodes(level, index, hashes)` is called once per level, bottom up, with the
        nodes completed by this call: the leaves themselves first, then their new parents.
        """
        _check_hashes(leaf_hashes)
        # Work on a copy so that a failing `on_nodes` leaves the range as it was.
        stack = self._hashes.copy()  # smallest subtree last: it is the one a new node pairs with
        leftovers: list[bytes] = []
        run = leaf_hashes
        level, index = 0, self._size
        while run:
            if on_nodes is not None:
                on_nodes(level, index, run)
            # An odd first index means its left sibling is this level's node of the compact range.
            start = index & 1
            end = len(run) - (len(run) - start) % 2
            parents = [node_hash(stack.pop(), run[0])] if start else []
            parents += node_hashes(run[start:end:2], run[start + 1 : end : 2])
            if end < len(run):
                leftovers.append(run[-1])
            run = parents
            level, index = level + 1, index >> 1
        stack.extend(reversed(leftovers))
        self._hashes = stack
        self._size += len(leaf_hashes)
