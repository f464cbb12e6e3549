"""The gateway install: `pip install .[edge]` in a clean venv pulls no PostgreSQL driver, no numpy,
and `mrv edge --help` works there (edge_agent must never import server-side packages)."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_edge_extra_installs_alone_and_runs(tmp_path: Path) -> None:
    env_dir = tmp_path / "edge-venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", f"{ROOT}[edge]"], check=True, timeout=600)
    installed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], check=True,
                               capture_output=True, text=True).stdout.lower()
    names = {line.split("==")[0] for line in installed.splitlines()}
    assert not names & {"numpy", "psycopg", "psycopg-binary", "psycopg2", "psycopg-pool", "web3", "fastapi"}
    assert {"paho-mqtt", "pymodbus", "pynacl", "cbor2"} <= names
    mrv = env_dir / "bin" / "mrv"
    help_text = subprocess.run([mrv, "edge", "--help"], check=True, capture_output=True, text=True).stdout
    assert "keygen" in help_text
    refused = subprocess.run([mrv, "db", "status"], capture_output=True, text=True)
    assert refused.returncode == 2 and "server" in refused.stderr
