"""A whole Merkle log in memory: every node by (level, index). For tests and the offline verifier."""

from __future__ import annotations

from collections.abc import Sequence

from anchoring.compact import CompactRange, NodeId, range_nodes, range_root
from anchoring.proof import ProofPlan, consistency_plan, inclusion_plan
from anchoring.rfc6962 import EMPTY_ROOT


class MemoryLog:
    """An append-only log that keeps every perfect-subtree node, so it can prove any past state."""

    __slots__ = ("_levels", "_range")

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = []
        self._range = CompactRange()
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        return self._range.size

    def append(self, leaf_hash: bytes) -> None:
        self._range.append(leaf_hash, self._store)

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        self._range.extend(leaf_hashes, self._store)

    def node(self, node: NodeId) -> bytes:
        """The hash of a perfect subtree; `KeyError` if it is not complete yet."""
        level, index = node
        if not (0 <= level < len(self._levels) and 0 <= index < len(self._levels[level])):
            raise KeyError(node)
        return self._levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        """The root hash at `size` (default: now); any past size works."""
        size = self._check_size(size)
        return range_root([self.node(n) for n in range_nodes(0, size)]) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return self._assemble(inclusion_plan(index, self._check_size(size)))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return self._assemble(consistency_plan(size1, self._check_size(size2)))

    def _assemble(self, plan: ProofPlan) -> list[bytes]:
        return plan.assemble({n: self.node(n) for n in plan.nodes})

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} is outside the log's history (0..{self.size})")
        return size

    def _store(self, level: int, index: int, hashes: Sequence[bytes]) -> None:
        if level == len(self._levels):
            self._levels.append([])
        self._levels[level].extend(hashes)
