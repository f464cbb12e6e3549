"""Schema migrations: the ordered SQL files in ingest/migrations, each applied in its own transaction.

A file is `NNNN_name.sql` (both storage modes) or a pair `NNNN_name.native.sql` and
`NNNN_name.timescaledb.sql` (one per mode). The storage mode is chosen on the first run -- TimescaleDB
when the extension is installed or can be created, native declarative partitions otherwise -- and
recorded in `schema_migrations`, so a database never changes mode halfway.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from ingest.errors import MigrationError
from mrv_common.logs import log_event

log = logging.getLogger(__name__)

_FILE = re.compile(r"(\d{4})_([a-z0-9_]+?)(?:\.(native|timescaledb))?\.sql")
_LOCK_KEY = 0x6D72765F6D696772  # pg_advisory_lock key of the migrator ("mrv_migr")


class StorageMode(enum.StrEnum):
    TIMESCALEDB = "timescaledb"
    NATIVE = "native"

    @property
    def label(self) -> str:
        return "timescaledb" if self is StorageMode.TIMESCALEDB else "native partitions"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    common: str | None  # SQL for both modes, or None when the migration has one file per mode
    per_mode: dict[StorageMode, str]

    def sql(self, mode: StorageMode) -> str:
        if self.common is not None:
            return self.common
        return self.per_mode[mode]


@dataclass(frozen=True)
class SchemaStatus:
    version: int  # 0 before any migration
    latest: int
    mode: StorageMode | None  # None before the readings table exists

    @property
    def pending(self) -> int:
        return self.latest - self.version


def available_migrations() -> list[Migration]:
    """The migrations shipped with the package, in order; checks that the files form a sequence."""
    found: dict[int, tuple[str, dict[str | None, str]]] = {}
    for entry in resources.files("ingest.migrations").iterdir():
        match = _FILE.fullmatch(entry.name)
        if match is None:
            continue
        version, name, variant = int(match[1]), match[2], match[3]
        known_name, texts = found.setdefault(version, (name, {}))
        if known_name != name:
            raise MigrationError(f"migration {version:04d} has two names: {known_name}, {name}")
        texts[variant] = entry.read_text()
    migrations = []
    for expected, version in enumerate(sorted(found), start=1):
        name, texts = found[version]
        if version != expected:
            raise MigrationError(f"migration {expected:04d} is missing")
        per_mode = {StorageMode(v): sql for v, sql in texts.items() if v is not None}
        common = texts.get(None)
        if (common is None) == (not per_mode) or (per_mode and set(per_mode) != set(StorageMode)):
            raise MigrationError(f"migration {version:04d} needs one common file or one per storage mode")
        migrations.append(Migration(version, name, common, per_mode))
    return migrations


def _ensure_version_table(conn: psycopg.Connection) -> None:
    conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        storage_mode text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now())""")


def _applied(conn: psycopg.Connection) -> dict[int, StorageMode]:
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
        return {}
    rows = conn.execute("SELECT version, storage_mode FROM schema_migrations").fetchall()
    return {version: StorageMode(mode) for version, mode in rows}


def _timescaledb_installed(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None


def _timescaledb_available(conn: psycopg.Connection) -> bool:
    query = "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    return conn.execute(query).fetchone() is not None


def _choose_mode(conn: psycopg.Connection, applied: dict[int, StorageMode],
                 requested: StorageMode | None) -> StorageMode:
    recorded = set(applied.values())
    if recorded:
        mode = recorded.pop()
        if requested is not None and requested is not mode:
            raise MigrationError(f"the database already uses {mode.label}; "
                                 f"it cannot switch to {requested.label}")
        return mode
    if requested is StorageMode.NATIVE:
        return StorageMode.NATIVE
    if _timescaledb_installed(conn):
        return StorageMode.TIMESCALEDB
    if _timescaledb_available(conn):
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            return StorageMode.TIMESCALEDB
        except psycopg.Error as e:
            if requested is StorageMode.TIMESCALEDB:
                raise MigrationError(f"cannot create the timescaledb extension: {e}") from e
            log_event(log, logging.WARNING, "timescaledb_unusable", error=str(e).strip(),
                      hint="preload it and CREATE EXTENSION timescaledb as a superuser, then migrate")
            return StorageMode.NATIVE
    if requested is StorageMode.TIMESCALEDB:
        raise MigrationError("the timescaledb extension is not available on this server")
    return StorageMode.NATIVE


def migrate(conn: psycopg.Connection, requested: StorageMode | None = None) -> list[int]:
    """Apply every pending migration; returns the versions applied. `conn` must be in autocommit mode.

    `requested` None chooses the storage mode automatically (see the module docstring).
    """
    if not conn.autocommit:
        raise ValueError("migrate needs an autocommit connection (each migration is its own transaction)")
    migrations = available_migrations()
    conn.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
    try:
        _ensure_version_table(conn)
        applied = _applied(conn)
        mode = _choose_mode(conn, applied, requested)
        done = []
        for m in migrations:
            if m.version in applied:
                continue
            try:
                with conn.transaction():
                    conn.execute(m.sql(mode).encode())
                    conn.execute("INSERT INTO schema_migrations (version, name, storage_mode) "
                                 "VALUES (%s, %s, %s)", [m.version, m.name, mode.value])
            except psycopg.Error as e:
                raise MigrationError(f"migration {m.version:04d}_{m.name} failed: {e}") from e
            log_event(log, logging.INFO, "migration_applied", version=m.version, name=m.name, mode=mode.value)
            done.append(m.version)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])


def storage_mode(conn: psycopg.Connection) -> StorageMode | None:
    """What the catalog says `readings` is: a hypertable, a partitioned table, or not there yet."""
    if conn.execute("SELECT to_regclass('readings')").fetchone() == (None,):
        return None
    if _timescaledb_installed(conn) and conn.execute(
            "SELECT 1 FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = 'readings'").fetchone():
        return StorageMode.TIMESCALEDB
    if conn.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'readings'::regclass").fetchone():
        return StorageMode.NATIVE
    raise MigrationError("readings is neither a hypertable nor a partitioned table")


def schema_status(conn: psycopg.Connection) -> SchemaStatus:
    applied = _applied(conn)
    return SchemaStatus(max(applied, default=0), len(available_migrations()), storage_mode(conn))
