"""Schema migrations and storage modes against the real PostgreSQL (native partitions here; the
TimescaleDB variant runs where the extension is available)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from ingest.errors import MigrationError
from ingest.migrate import StorageMode, available_migrations, migrate, schema_status, storage_mode
from managed_services.postgres import Postgres

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_db(postgres_session: Postgres) -> Iterator[str]:
    name = f"empty_{uuid.uuid4().hex[:10]}"
    postgres_session.create_database(name)
    try:
        yield postgres_session.conninfo(name)
    finally:
        postgres_session.drop_database(name)


def test_shipped_migrations_form_a_sequence_with_both_storage_variants() -> None:
    migrations = available_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    readings = next(m for m in migrations if m.name == "readings")
    assert set(readings.per_mode) == set(StorageMode) and readings.common is None
    assert "create_hypertable" in readings.sql(StorageMode.TIMESCALEDB)
    assert "add_compression_policy" in readings.sql(StorageMode.TIMESCALEDB)
    assert "add_retention_policy" not in readings.sql(StorageMode.TIMESCALEDB)
    assert "PARTITION BY RANGE (ts)" in readings.sql(StorageMode.NATIVE)


def test_migrate_applies_everything_once_and_records_the_mode(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert schema_status(conn).version == 0 and storage_mode(conn) is None
        assert migrate(conn) == [m.version for m in available_migrations()]
        assert migrate(conn) == []
        status = schema_status(conn)
        assert status.pending == 0 and status.mode is StorageMode.NATIVE
        modes = conn.execute("SELECT DISTINCT storage_mode FROM schema_migrations").fetchall()
        assert modes == [("native",)]
        with pytest.raises(MigrationError, match="cannot switch"):
            migrate(conn, StorageMode.TIMESCALEDB)


def test_auto_mode_uses_native_partitions_without_timescaledb(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone():
            pytest.skip("TimescaleDB is available here: see the timescaledb test")
        with pytest.raises(MigrationError, match="not available"):
            migrate(conn, StorageMode.TIMESCALEDB)
        migrate(conn)
        assert storage_mode(conn) is StorageMode.NATIVE
        default = conn.execute("SELECT c.relname FROM pg_partitioned_table p JOIN pg_inherits i "
                               "ON i.inhparent = p.partrelid JOIN pg_class c ON c.oid = i.inhrelid "
                               "WHERE p.partrelid = 'readings'::regclass").fetchall()
        assert default == [("readings_default",)]


def test_timescaledb_mode_where_the_extension_exists(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone():
            pytest.skip("the timescaledb extension is not installed on this server")
        migrate(conn, StorageMode.TIMESCALEDB)
        assert storage_mode(conn) is StorageMode.TIMESCALEDB
        policies = conn.execute("SELECT proc_name FROM timescaledb_information.jobs "
                                "WHERE hypertable_name = 'readings'").fetchall()
        assert ("policy_compression",) in policies and ("policy_retention",) not in policies


def test_db_cli_migrate_and_status(empty_db: str) -> None:
    def mrv_db(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mrv_cli", "db", *args, "--conninfo", empty_db],
                              capture_output=True, text=True, timeout=60)

    before = mrv_db("status")
    assert before.returncode == 0
    assert "schema version 0 of" in before.stdout and "not migrated" in before.stdout
    done = mrv_db("migrate")
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout and "storage mode: native partitions" in done.stdout
    broken = subprocess.run([sys.executable, "-m", "mrv_cli", "db", "status", "--conninfo",
                             "host=127.0.0.1 port=1 connect_timeout=1"],
                            capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1 and "cannot connect" in broken.stderr and "Traceback" not in broken.stderr
