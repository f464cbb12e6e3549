"""Reports on a streaming hot standby (docs/scaling.md: reports read from replicas): the same document
as on the primary, packed days and raw ones alike, with no write anywhere on the standby."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ingest.migrate import migrate
from managed_services.postgres import Postgres
from mrv_engine.cli import run_report
from mrv_engine.db import SOURCES, refresh_rollups
from tests.mrv_engine.dbplant import PERIOD, project_config, project_toml, recording, store

pytestmark = pytest.mark.integration


@pytest.fixture
def primary_and_standby() -> Iterator[tuple[Postgres, Postgres]]:
    # Not under pytest's tmp_path: that is private to root, and the servers run as the postgres user.
    work = Path(tempfile.mkdtemp(prefix="mrv-standby-"))
    work.chmod(0o755)
    primary = Postgres(work / "primary").start()
    standby = None
    try:
        with psycopg.connect(primary.conninfo(), autocommit=True) as conn:
            migrate(conn)
        standby = primary.start_standby(work / "standby")
        yield primary, standby
    finally:
        for server in (standby, primary):
            if server is not None:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


def _replayed(primary: Postgres, standby: Postgres, timeout: float = 30) -> None:
    with psycopg.connect(primary.conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    deadline = time.monotonic() + timeout
    with psycopg.connect(standby.conninfo(), autocommit=True) as conn:
        while time.monotonic() < deadline:
            done = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [row[0]]).fetchone()
            if done is not None and done[0]:
                return
            time.sleep(0.1)
    raise AssertionError(f"the standby did not replay up to {row[0]} in {timeout} s")


def test_a_report_on_a_hot_standby_equals_the_primarys(primary_and_standby: tuple[Postgres, Postgres]) -> None:
    primary, standby = primary_and_standby
    devices = ["pv-1", "pv-2"]
    store(primary.conninfo(), [recording("pv-1")])
    assert refresh_rollups(primary.conninfo()) > 0
    store(primary.conninfo(), [recording("pv-2", seed=2)])  # not packed yet: read raw
    _replayed(primary, standby)
    config, config_bytes = project_config(devices), project_toml(devices).encode()
    expected = run_report(primary.conninfo(), config, config_bytes, [PERIOD], refresh=False)
    with psycopg.connect(standby.conninfo(), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        pending = conn.execute("SELECT count(*) FROM rollup_pending()").fetchone()
        assert pending is not None and pending[0] > 0
    # refresh left on (the default): skipped on the standby; two connections on an exported snapshot
    for source in SOURCES:
        doc = run_report(standby.conninfo(), config, config_bytes, [PERIOD], source=source)
        assert {**doc, "source": None} == {**expected, "source": None}
    assert expected["totals"]["net_wh"] > 0
    refused = subprocess.run([sys.executable, "-m", "mrv_cli", "db", "refresh-rollups", "--conninfo",
                              standby.conninfo()], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "refuses writes (a hot standby?)" in refused.stderr and "Traceback" not in refused.stderr
