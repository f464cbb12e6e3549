"""The real PostgreSQL for integration tests: one cluster per session, a fresh database per test.

Each test's database is cloned (CREATE DATABASE ... TEMPLATE) from one that has every migration
applied, which takes a few tens of milliseconds instead of migrating again.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ingest.migrate import migrate
from managed_services.postgres import Postgres

TEMPLATE = "mrv_template"


@pytest.fixture(scope="session")
def postgres_session() -> Iterator[Postgres]:
    """The session's cluster. Its data dir is not under pytest's tmp_path: that is private to root
    (0700), and the server runs as the postgres user; a short path also keeps the unix socket usable."""
    data_dir = Path(tempfile.mkdtemp(prefix="mrv-pg-"))
    server = Postgres(data_dir).start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(postgres_session: Postgres) -> str:
    postgres_session.create_database(TEMPLATE)
    with psycopg.connect(postgres_session.conninfo(TEMPLATE), autocommit=True) as conn:
        migrate(conn)
    return TEMPLATE


@pytest.fixture
def pg_conninfo(postgres_session: Postgres, pg_template: str) -> Iterator[str]:
    """conninfo of a database of this test's own, schema migrated (native partitions here)."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres_session.create_database(name, template=pg_template)
    try:
        yield postgres_session.conninfo(name)
    finally:
        postgres_session.drop_database(name)
