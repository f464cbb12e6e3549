"""Proof generation against the RFC's recursive definitions, and verification against tampering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anchoring.compact import NodeId
from anchoring.errors import (
    BadHashSize,
    IndexOutOfRange,
    InvalidTreeSizes,
    MissingNode,
    ProofError,
    RootMismatch,
    WrongProofLength,
)
from anchoring.memory_log import MemoryLog
from anchoring.proof import consistency_plan, inclusion_plan
from anchoring.rfc6962 import leaf_hash
from anchoring.verify import verify_consistency, verify_inclusion
from tests.anchoring.merkle_reference import consistency, mth, path

LEAVES = [leaf_hash(b"entry %d" % i) for i in range(1100)]
SMALL = MemoryLog(LEAVES[:48])
BIG = MemoryLog(LEAVES)


def test_small_trees_exhaustively() -> None:
    for size in range(1, SMALL.size + 1):
        root = SMALL.root(size)
        assert root == mth(LEAVES[:size])
        for index in range(size):
            proof = SMALL.inclusion_proof(index, size)
            assert proof == path(index, LEAVES[:size])
            verify_inclusion(index, size, LEAVES[index], proof, root)
        for size1 in range(1, size + 1):
            proof = SMALL.consistency_proof(size1, size)
            assert proof == consistency(size1, LEAVES[:size])
            verify_consistency(size1, size, proof, SMALL.root(size1), root)


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, BIG.size))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(2, BIG.size))
    return draw(st.integers(1, size2 - 1)), size2


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    return data[: bit // 8] + bytes([data[bit // 8] ^ (1 << bit % 8)]) + data[bit // 8 + 1 :]


@settings(deadline=None)
@given(index_and_size())
def test_inclusion_proofs_match_reference_and_verify(case: tuple[int, int]) -> None:
    index, size = case
    proof = BIG.inclusion_proof(index, size)
    assert proof == path(index, LEAVES[:size])
    verify_inclusion(index, size, LEAVES[index], proof, BIG.root(size))


@settings(deadline=None)
@given(two_sizes())
def test_consistency_proofs_match_reference_and_verify(case: tuple[int, int]) -> None:
    size1, size2 = case
    proof = BIG.consistency_proof(size1, size2)
    assert proof == consistency(size1, LEAVES[:size2])
    verify_consistency(size1, size2, proof, BIG.root(size1), BIG.root(size2))


@settings(deadline=None)
@given(index_and_size(), st.integers(0, 2**16), st.sampled_from(["proof", "leaf", "root"]))
def test_any_flipped_bit_breaks_an_inclusion_proof(case: tuple[int, int], bit: int, where: str) -> None:
    index, size = case
    proof, leaf, root = BIG.inclusion_proof(index, size), LEAVES[index], BIG.root(size)
    if where == "proof" and proof:
        i = bit % len(proof)
        proof[i] = _flip(proof[i], bit)
    elif where == "leaf":
        leaf = _flip(leaf, bit)
    else:
        root = _flip(root, bit)
    with pytest.raises(RootMismatch):
        verify_inclusion(index, size, leaf, proof, root)


@settings(deadline=None)
@given(two_sizes(), st.integers(0, 2**16), st.sampled_from(["proof", "root1", "root2"]))
def test_any_flipped_bit_breaks_a_consistency_proof(case: tuple[int, int], bit: int, where: str) -> None:
    size1, size2 = case
    proof, root1, root2 = BIG.consistency_proof(size1, size2), BIG.root(size1), BIG.root(size2)
    if where == "proof":
        i = bit % len(proof)
        proof[i] = _flip(proof[i], bit)
    elif where == "root1":
        root1 = _flip(root1, bit)
    else:
        root2 = _flip(root2, bit)
    with pytest.raises(RootMismatch):
        verify_consistency(size1, size2, proof, root1, root2)


@settings(deadline=None)
@given(index_and_size(), st.sampled_from(["drop", "extend", "duplicate", "short"]))
def test_proofs_of_the_wrong_shape_are_refused(case: tuple[int, int], change: str) -> None:
    index, size = case
    proof = BIG.inclusion_proof(index, size)
    if change == "drop" and proof:
        proof.pop()
    elif change == "extend":
        proof.append(BIG.root(size))
    elif change == "duplicate" and proof:
        proof.insert(0, proof[0])
    elif proof:
        proof[-1] = proof[-1][:31]
    else:
        proof.append(b"")
    with pytest.raises((WrongProofLength, BadHashSize)):
        verify_inclusion(index, size, LEAVES[index], proof, BIG.root(size))


@given(st.integers(1, 2**62), st.data())
def test_plans_need_logarithmically_many_nodes(size: int, data: st.DataObject) -> None:
    # Target P4 depends on this: a proof in a huge log is one small read of the node table.
    index = data.draw(st.integers(0, size - 1))
    size1 = data.draw(st.integers(1, size))
    for plan in (inclusion_plan(index, size), consistency_plan(size1, size)):
        assert len(plan.nodes) <= 2 * size.bit_length()
        assert all(n.index << n.level < size for n in plan.nodes)


def test_appending_one_by_one_keeps_the_same_nodes() -> None:
    log = MemoryLog()
    for leaf in LEAVES[:100]:
        log.append(leaf)
    assert [log.inclusion_proof(i) for i in range(100)] == [BIG.inclusion_proof(i, 100) for i in range(100)]
    assert log.consistency_proof(37) == BIG.consistency_proof(37, 100)


def test_equal_sizes_need_no_proof() -> None:
    assert consistency_plan(7, 7).nodes == ()
    assert BIG.consistency_proof(7, 7) == []
    verify_consistency(7, 7, [], BIG.root(7), BIG.root(7))


def test_assemble_names_missing_nodes() -> None:
    plan = inclusion_plan(5, 8)
    with pytest.raises(MissingNode, match="level 0 index 4"):
        plan.assemble({NodeId(1, 3): b"\0" * 32, NodeId(2, 0): b"\0" * 32})


def test_plans_refuse_impossible_requests() -> None:
    for index, size in [(0, 0), (3, 3), (-1, 4)]:
        with pytest.raises(ValueError):
            inclusion_plan(index, size)
    for size1, size2 in [(0, 4), (5, 4)]:
        with pytest.raises(ValueError):
            consistency_plan(size1, size2)
    with pytest.raises(ValueError):
        BIG.root(BIG.size + 1)
    with pytest.raises(KeyError):
        SMALL.node(NodeId(6, 0))  # 48 leaves: no complete subtree of 64 yet


def test_verifier_refusals_have_reasons() -> None:
    root = BIG.root(8)
    with pytest.raises(IndexOutOfRange):
        verify_inclusion(8, 8, LEAVES[0], BIG.inclusion_proof(0, 8), root)
    with pytest.raises(BadHashSize):
        verify_inclusion(0, 8, LEAVES[0][:31], BIG.inclusion_proof(0, 8), root)
    with pytest.raises(InvalidTreeSizes):
        verify_consistency(0, 8, [], BIG.root(0), root)
    with pytest.raises(InvalidTreeSizes):
        verify_consistency(9, 8, [], BIG.root(9), root)
    with pytest.raises(WrongProofLength):
        verify_consistency(8, 8, [root], root, root)
    with pytest.raises(RootMismatch):
        verify_consistency(8, 8, [], BIG.root(7), root)


def test_errors_carry_stable_codes_and_one_line_messages() -> None:
    with pytest.raises(ProofError) as info:
        verify_inclusion(0, 8, LEAVES[1], BIG.inclusion_proof(0, 8), BIG.root(8))
    assert info.value.code == "proof.root_mismatch"
    assert str(info.value).startswith("proof.root_mismatch: the proof does not lead to the expected root")
    assert "\n" not in str(info.value)
