import hashlib

import pytest

from anchoring.rfc6962 import EMPTY_ROOT, leaf_hash, leaf_hashes, node_hash, node_hashes, node_hashes_packed
from tests.anchoring.merkle_reference import mth

# The reference tree of transparency-dev/merkle and the vectors' README: leaves by hex, roots by size.
LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_hashes_are_domain_separated() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"l" * 32, b"r" * 32) == hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest()


def test_reference_tree_roots() -> None:
    leaves = [leaf_hash(bytes.fromhex(h)) for h in LEAVES]
    assert [mth(leaves[:size]).hex() for size in range(9)] == ROOTS


def test_bulk_hashing_equals_one_at_a_time() -> None:
    entries = [bytes([i]) * i for i in range(50)]
    hashes = leaf_hashes(entries)
    assert hashes == [hashlib.sha256(b"\x00" + e).digest() for e in entries]
    pairs = zip(hashes[0::2], hashes[1::2], strict=True)
    expected = [hashlib.sha256(b"\x01" + a + b).digest() for a, b in pairs]
    assert node_hashes(hashes[0::2], hashes[1::2]) == expected == node_hashes_packed(b"".join(hashes))
    assert leaf_hashes([]) == node_hashes([], []) == node_hashes_packed(b"") == []
    with pytest.raises(ValueError):
        node_hashes(hashes[:3], hashes[:2])
