"""Every transparency-dev/merkle proof vector: accepted exactly when `wantErr` is false."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from anchoring.errors import ProofError
from anchoring.verify import verify_consistency, verify_inclusion

VECTORS = Path(__file__).parent / "vectors" / "rfc6962"
INCLUSION = sorted((VECTORS / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((VECTORS / "consistency").rglob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text())
    vector["proof"] = [base64.b64decode(h) for h in vector["proof"] or []]
    return vector


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def test_all_vectors_are_collected() -> None:
    # A glob that silently matched nothing would make every test below vacuous.
    assert (len(INCLUSION), len(CONSISTENCY)) == (98, 98)


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_inclusion_vector(path: Path) -> None:
    v = _load(path)
    b = base64.b64decode

    def verify() -> None:
        verify_inclusion(v["leafIdx"], v["treeSize"], b(v["leafHash"]), v["proof"], b(v["root"]))

    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_consistency_vector(path: Path) -> None:
    v = _load(path)
    b = base64.b64decode

    def verify() -> None:
        verify_consistency(v["size1"], v["size2"], v["proof"], b(v["root1"]), b(v["root2"]))

    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()
