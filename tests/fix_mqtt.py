"""The real Mosquitto for integration tests: one broker per test on a free port, data in tmp_path."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from managed_services.mosquitto import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture(scope="session")
def mosquitto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def project_id() -> str:
    """A unique project id per test, so tests sharing a broker never see each other's topics."""
    return f"p-{uuid.uuid4().hex[:10]}"
