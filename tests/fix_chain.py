"""The real EVM chain for integration tests: one anvil per session, a fresh contract per test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchoring.cli import ARTIFACT
from managed_services.anvil import NODE_PREFIX, Anvil


def node_tools_available() -> bool:
    return shutil.which("npm") is not None or (NODE_PREFIX / "node_modules" / ".bin").is_dir()


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    if not node_tools_available():
        pytest.skip("anvil needs npm (Node.js) to install")
    log_dir = Path(tempfile.mkdtemp(prefix="mrv-anvil-"))
    chain = Anvil(log_dir / "anvil.log").start()
    try:
        yield chain
    finally:
        chain.kill()
        shutil.rmtree(log_dir, ignore_errors=True)


@pytest.fixture
def anchor_contract(anvil: Anvil) -> str:
    """The address of a CheckpointAnchor deployed for this test by anvil's first dev account."""
    from anchoring.ledger.evm import deploy  # web3 loads only for the tests that use a chain

    return deploy(anvil.rpc_url, ARTIFACT)
