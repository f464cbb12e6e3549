"""Console fixtures (shared with the page and browser tests):

* `console_seed` (session): a database seeded once (tests/console/seed.py) and its facts (`Seeded`).
* `console_db` (function) / `console_module_db` (module): a clone of it, a test's own to change.
* `console_config`: a ConsoleConfig for `console_db` (log key, projects and reports directories).
* `console_client`: the app in-process (starlette TestClient, lifespan run) on `console_db`.
* `console_server` (module): `mrv console serve` as a real uvicorn process on a free port, on its own
  clone; `.url`, `.seed`, `.conninfo`, and users admin / operator / verifier with passwords
  `seed.PASSWORDS[role]` and API tokens `seed.tokens[role]`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from managed_services._process import free_port, stop_process, wait_for_port
from managed_services.postgres import Postgres
from mrv_engine.console.app import create_app
from mrv_engine.console.config import ConsoleConfig
from tests.console.seed import Seeded, seed

SEED_DB = "console_seed"
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SeedDatabase:
    name: str
    seeded: Seeded


@pytest.fixture(scope="session")
def console_seed(postgres_session: Postgres, pg_template: str) -> Iterator[SeedDatabase]:
    workdir = Path(tempfile.mkdtemp(prefix="mrv-console-"))
    postgres_session.create_database(SEED_DB, template=pg_template)
    seeded = seed(postgres_session.conninfo(SEED_DB), workdir)
    yield SeedDatabase(SEED_DB, seeded)
    postgres_session.drop_database(SEED_DB)


def _clone(postgres_session: Postgres, console_seed: SeedDatabase) -> Iterator[str]:
    name = f"console_{uuid.uuid4().hex[:12]}"
    postgres_session.create_database(name, template=console_seed.name)
    try:
        yield postgres_session.conninfo(name)
    finally:
        postgres_session.drop_database(name)


@pytest.fixture
def console_db(postgres_session: Postgres, console_seed: SeedDatabase) -> Iterator[str]:
    """conninfo of a clone of the seeded database, this test's own."""
    yield from _clone(postgres_session, console_seed)


@pytest.fixture(scope="module")
def console_module_db(postgres_session: Postgres, console_seed: SeedDatabase) -> Iterator[str]:
    yield from _clone(postgres_session, console_seed)


def make_config(conninfo: str, seeded: Seeded, reports_dir: Path, **extra: object) -> ConsoleConfig:
    return ConsoleConfig(conninfo=conninfo, projects_dir=seeded.projects_dir, reports_dir=reports_dir,
                         log_vkey=seeded.log_vkey, pool_max=4, **extra)  # type: ignore[arg-type]


@pytest.fixture
def console_config(console_db: str, console_seed: SeedDatabase, tmp_path: Path) -> ConsoleConfig:
    return make_config(console_db, console_seed.seeded, tmp_path / "reports")


@pytest.fixture
def console_client(console_config: ConsoleConfig) -> Iterator[TestClient]:
    """The app in-process; requests go to http://testserver."""
    with TestClient(create_app(console_config)) as client:
        yield client


@dataclass(frozen=True)
class ConsoleServer:
    url: str
    conninfo: str
    seed: Seeded
    config_file: Path
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def console_server(console_module_db: str, console_seed: SeedDatabase,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    workdir = tmp_path_factory.mktemp("console-server")
    port = free_port()
    seeded = console_seed.seeded
    config_file = workdir / "console.toml"
    config_file.write_text(f"conninfo = {console_module_db!r}\nport = {port}\n"
                           f"projects_dir = {str(seeded.projects_dir)!r}\nreports_dir = {str(workdir / 'reports')!r}\n"
                           f"log_vkey = {seeded.log_vkey!r}\n".replace("'", '"'))
    log = workdir / "console.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mrv_cli", "console", "serve", "--config", str(config_file)],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        wait_for_port(port, 30, proc, log)
        yield ConsoleServer(f"http://127.0.0.1:{port}", console_module_db, seeded, config_file, log)
    finally:
        stop_process(proc, 10)


def db_row(conninfo: str, query: str, params: list[object] | None = None) -> tuple[object, ...] | None:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(query.encode(), params).fetchone()


@pytest.fixture(scope="module")
def module_client(console_module_db: str, console_seed: SeedDatabase,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the module's read-only tests, so that its reports are generated once."""
    config = make_config(console_module_db, console_seed.seeded, tmp_path_factory.mktemp("reports"))
    with TestClient(create_app(config)) as client:
        yield client
