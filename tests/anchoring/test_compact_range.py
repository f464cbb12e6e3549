from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anchoring.compact import CompactRange, NodeId, range_nodes, range_root
from anchoring.rfc6962 import EMPTY_ROOT, leaf_hash
from tests.anchoring.merkle_reference import mth

LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(600)]


def _subtree(node: NodeId) -> Sequence[bytes]:
    return LEAVES[node.index << node.level : (node.index + 1) << node.level]


def test_append_one_by_one_matches_reference() -> None:
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT
    for size in range(1, 140):
        cr.append(LEAVES[size - 1])
        assert cr.size == size
        assert cr.root() == mth(LEAVES[:size])
        assert cr.hashes == tuple(mth(_subtree(n)) for n in range_nodes(0, size))


@settings(deadline=None)
@given(st.lists(st.integers(0, 70), max_size=12))
def test_extend_in_batches_matches_reference(batches: list[int]) -> None:
    cr = CompactRange()
    for batch in batches:
        cr.extend(LEAVES[cr.size : cr.size + batch])
        assert cr.root() == mth(LEAVES[: cr.size])


@settings(deadline=None)
@given(st.lists(st.integers(0, 70), max_size=12))
def test_every_perfect_node_is_reported_once_bottom_up(batches: list[int]) -> None:
    cr = CompactRange()
    reported: list[tuple[int, int]] = []
    nodes: dict[NodeId, bytes] = {}

    def sink(level: int, index: int, hashes: Sequence[bytes]) -> None:
        reported.append((level, len(hashes)))
        for i, h in enumerate(hashes):
            assert NodeId(level, index + i) not in nodes
            nodes[NodeId(level, index + i)] = h

    for batch in batches:
        reported.clear()
        cr.extend(LEAVES[cr.size : cr.size + batch], sink)
        assert [level for level, _ in reported] == list(range(len(reported)))
    size = cr.size
    perfect = {NodeId(lv, i) for lv in range(size.bit_length()) for i in range(size >> lv)}
    assert nodes.keys() == perfect
    assert all(h == mth(_subtree(n)) for n, h in nodes.items())


@settings(deadline=None)
@given(st.integers(0, 300), st.integers(0, 300))
def test_restored_range_continues_like_the_original(size: int, more: int) -> None:
    original = CompactRange()
    original.extend(LEAVES[:size])
    restored = CompactRange(size, [mth(_subtree(n)) for n in range_nodes(0, size)])
    assert restored.hashes == original.hashes
    original.extend(LEAVES[size : size + more])
    restored.extend(LEAVES[size : size + more])
    assert restored.root() == original.root() == mth(LEAVES[: size + more])


def test_failing_sink_leaves_the_range_unchanged() -> None:
    cr = CompactRange()
    cr.extend(LEAVES[:5])
    before = (cr.size, cr.hashes)

    def sink(level: int, index: int, hashes: Sequence[bytes]) -> None:
        if level == 2:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cr.extend(LEAVES[5:20], sink)
    assert (cr.size, cr.hashes) == before


@given(st.integers(0, 2**40), st.integers(0, 2**40))
def test_range_nodes_cover_the_range_with_fewest_aligned_subtrees(a: int, b: int) -> None:
    begin, end = min(a, b), max(a, b)
    nodes = range_nodes(begin, end)
    position = begin
    for node in nodes:
        assert node.index << node.level == position  # contiguous and aligned by construction
        position += 1 << node.level
    assert position == end
    # Fewest: no two neighbours are siblings that one parent could replace.
    for left, right in itertools.pairwise(nodes):
        assert not (left.level == right.level and left.index % 2 == 0)
    assert len(nodes) <= 2 * max(end - begin, 1).bit_length()


def test_misuse_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        CompactRange().append(b"short")
    with pytest.raises(ValueError):
        CompactRange(3, [LEAVES[0]])
    with pytest.raises(ValueError):
        CompactRange(-1)
    with pytest.raises(ValueError):
        range_nodes(5, 4)
    with pytest.raises(ValueError):
        range_root([])
