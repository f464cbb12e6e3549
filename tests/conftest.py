"""Shared test setup: real servers come from one fixture plugin per resource."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fix_chain", "tests.fix_mqtt", "tests.fix_pg"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true",
                     help="run fuzz and fault tests at their full size (slow; CI runs the short form)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--full"):
        return
    skip = pytest.mark.skip(reason="full-size run: pass --full")
    for item in items:
        if "full" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def full_run(request: pytest.FixtureRequest) -> bool:
    """True under --full: tests scale their example counts up to the targets in TARGETS.md."""
    return bool(request.config.getoption("--full"))
