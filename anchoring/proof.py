"""Storage-agnostic proof generation: which nodes a proof needs, and how to assemble it from them.

A store answers a `ProofPlan` with one read of `plan.nodes` (O(log n) ids; `anchoring.store`
reads the few hash tiles that hold them in one query) and hands the result to `plan.assemble`. Node ids follow
`anchoring.compact`: (level, index) of perfect subtrees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from anchoring.compact import NodeId, range_nodes, range_root
from anchoring.errors import MissingNode


@dataclass(frozen=True)
class ProofPlan:
    """The nodes behind a proof, in proof order (bottom up).

    `nodes[begin:end]`, if not empty, are the perfect subtrees of the one proof hash that lies on
    the tree's right edge and need not be perfect; they are folded into a single hash.
    """

    nodes: tuple[NodeId, ...]
    begin: int
    end: int

    def assemble(self, hashes: Mapping[NodeId, bytes]) -> list[bytes]:
        """The proof hashes, given the hash of every node in `nodes` (extra entries are ignored)."""
        missing = [node for node in self.nodes if node not in hashes]
        if missing:
            raise MissingNode(", ".join(f"level {n.level} index {n.index}" for n in missing))
        found = [hashes[node] for node in self.nodes]
        if self.begin == self.end:
            return found
        return [*found[: self.begin], range_root(found[self.begin : self.end]), *found[self.end :]]


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """The plan of the inclusion proof of leaf `index` in the tree of `size` leaves."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    return _path(0, index, size, ())


def consistency_plan(size1: int, size2: int) -> ProofPlan:
    """The plan of the consistency proof from the tree of `size1` leaves to that of `size2`."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    if size1 == size2:
        return ProofPlan((), 0, 0)
    # The proof is the path from the last perfect subtree of the old tree up to the new root,
    # preceded by that subtree itself unless it is the whole old tree, whose root the verifier has.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    return _path(level, index, size2, (NodeId(level, index),) if index else ())


def _path(level: int, index: int, size: int, prefix: tuple[NodeId, ...]) -> ProofPlan:
    """`prefix`, then the siblings on the path from node (level, index) to the root of `size`."""
    nodes = list(prefix)
    last = (size - 1) >> level  # the node on `level` that holds the tree's last leaf
    # Below the level where the paths to `index` and to the last leaf meet, every sibling is a
    # perfect subtree, except the topmost one: it holds the last leaf and may be partial.
    inner = (index ^ last).bit_length()
    nodes += (NodeId(level + i, (index >> i) ^ 1) for i in range(inner - 1))
    begin = len(nodes)
    if inner:
        top = level + inner - 1
        nodes += range_nodes(((size - 1) >> top) << top, size)
    end = len(nodes)
    # Above it the path runs along the right edge, where only left siblings exist.
    index, level = index >> inner, level + inner
    while index:
        if index & 1:
            nodes.append(NodeId(level, index ^ 1))
        index, level = index >> 1, level + 1
    return ProofPlan(tuple(nodes), begin, end)
