from __future__ import annotations

import json
from pathlib import Path

import pytest

from mrv_cli import main as mrv
from protocol import GENESIS_PREV, Ed25519Signer, Metric, Payload, PublicKeyRecord, Reading, sign_envelope

SIGNER = Ed25519Signer(bytes(range(32)))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    env = tmp_path / "meter-1-0.cose"
    env.write_bytes(sign_envelope(Payload("meter-1", 0, GENESIS_PREV, 1_700_000_000_000,
                                          (Reading(Metric.ENERGY_EXPORT_WH, 1_700_000_000_000, 5),)), SIGNER))
    key = tmp_path / "meter-1.pub.json"
    key.write_text(PublicKeyRecord("meter-1", SIGNER.public_key).to_json())
    return env, key


def test_inspect_decodes_and_verifies(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    env, key = files
    assert mrv(["inspect", str(env), "--pubkey", str(key)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["signature"] == "valid"
    assert out["readings"][0] == {"metric": "energy_export_wh", "unit": "Wh",
                                  "time": "2023-11-14T22:13:20.000+00:00", "value": 5, "quality": []}


def test_inspect_fails_on_a_tampered_envelope(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    env, key = files
    raw = bytearray(env.read_bytes())
    raw[-1] ^= 1
    env.write_bytes(bytes(raw))
    assert mrv(["inspect", str(env), "--pubkey", str(key)]) == 1
    assert "INVALID" in json.loads(capsys.readouterr().out)["signature"]


def test_inspect_garbage_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.cose"
    bad.write_bytes(b"hello")
    assert mrv(["inspect", str(bad)]) == 1
    assert "not a valid envelope" in capsys.readouterr().err
