from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anchoring.checkpoint import Checkpoint, sign_checkpoint
from anchoring.errors import MalformedTlogProof, OriginMismatch, RootMismatch, UnknownSigner
from anchoring.memory_log import MemoryLog
from anchoring.note import Signer
from anchoring.rfc6962 import leaf_hash
from anchoring.tlog_proof import TlogProof

ORIGIN = "mrv.example/log"
LOG = Signer.generate(ORIGIN)
LEAVES = [leaf_hash(b"envelope %d" % i) for i in range(300)]
TREE = MemoryLog(LEAVES)


def _proof(index: int, size: int, extra: bytes | None = None) -> TlogProof:
    checkpoint = sign_checkpoint(Checkpoint(ORIGIN, size, TREE.root(size)), LOG)
    return TlogProof(index, tuple(TREE.inclusion_proof(index, size)), checkpoint, extra)


def test_text_layout() -> None:
    proof = _proof(5, 8, extra=b"ctx")
    lines = proof.encode().decode().split("\n")
    assert lines[:3] == ["c2sp.org/tlog-proof@v1", "extra Y3R4", "index 5"]
    assert lines[6:8] == ["", ORIGIN]
    assert proof.encode().endswith(proof.checkpoint)


@settings(deadline=None, max_examples=50)
@given(st.integers(1, len(LEAVES)), st.data(), st.none() | st.binary(max_size=40))
def test_round_trip_and_verify(size: int, data: st.DataObject, extra: bytes | None) -> None:
    index = data.draw(st.integers(0, size - 1))
    proof = _proof(index, size, extra)
    parsed = TlogProof.parse(proof.encode())
    assert parsed == proof
    checkpoint = parsed.verify(LEAVES[index], LOG.verifier, origin=ORIGIN)
    assert (checkpoint.size, checkpoint.root_hash) == (size, TREE.root(size))


def test_verify_refuses_wrong_leaf_log_or_key() -> None:
    proof = _proof(3, 10)
    with pytest.raises(RootMismatch):
        proof.verify(LEAVES[4], LOG.verifier, origin=ORIGIN)
    with pytest.raises(OriginMismatch):
        proof.verify(LEAVES[3], LOG.verifier, origin="other.example/log")
    with pytest.raises(UnknownSigner):
        proof.verify(LEAVES[3], Signer.generate(ORIGIN).verifier, origin=ORIGIN)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"c2sp.org/tlog-proof@v1", b"c2sp.org/tlog-proof@v2"),
        (b"index 3\n", b"index 03\n"),
        (b"index 3\n", b"index -3\n"),
        (b"index 3\n", b"Index 3\n"),
        (b"index 3\n", b""),
        (b"index 3\n", b"index 3\nextra AA==\n"),
        (b"extra ", b"extra  "),
        (b"=\n\n", b"=\nAAAA\n\n"),  # a hash of 3 bytes
        (b"=\n\n", b"= \n\n"),
        (b"=\n\n", b"=\n\xff\n\n"),
    ],
)
def test_malformed_proofs_are_refused(old: bytes, new: bytes) -> None:
    text = _proof(3, 10, extra=b"x").encode()
    assert old in text
    with pytest.raises(MalformedTlogProof):
        TlogProof.parse(text.replace(old, new, 1))


def test_a_proof_without_checkpoint_is_refused() -> None:
    head = _proof(3, 10).encode().split(b"\n\n")[0]
    for text in [head, head + b"\n", head + b"\n\n"]:
        with pytest.raises(MalformedTlogProof):
            TlogProof.parse(text)


def test_proof_with_no_hashes() -> None:
    proof = _proof(0, 1)
    assert proof.hashes == ()
    assert TlogProof.parse(proof.encode()) == proof
    proof.verify(LEAVES[0], LOG.verifier, origin=ORIGIN)
