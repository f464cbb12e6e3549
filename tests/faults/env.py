"""The real servers a scenario runs against, for `bench/faults.py` (pytest gets them from the fixtures
in tests/fix_pg.py and tests/fix_mqtt.py): one PostgreSQL cluster with a migrated template database,
fresh databases and brokers on demand, all removed by `close`."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg

from ingest.migrate import migrate
from managed_services.mosquitto import Mosquitto
from managed_services.postgres import Postgres

TEMPLATE = "mrv_faults_template"


class FaultEnv:
    def __init__(self) -> None:
        # Not under a 0700 directory: PostgreSQL and Mosquitto run as their service users.
        self.root = Path(tempfile.mkdtemp(prefix="mrv-faults-"))
        self.root.chmod(0o755)
        self.postgres = Postgres(self.root / "pg").start()
        self.postgres.create_database(TEMPLATE)
        with psycopg.connect(self.postgres.conninfo(TEMPLATE), autocommit=True) as conn:
            migrate(conn)
        self._brokers: list[Mosquitto] = []

    def database(self) -> str:
        """conninfo of a new migrated database."""
        name = f"fault_{uuid.uuid4().hex[:12]}"
        self.postgres.create_database(name, template=TEMPLATE)
        return self.postgres.conninfo(name)

    def broker(self) -> Mosquitto:
        """A started broker whose sessions survive stop()/start() (data in its own directory)."""
        broker = Mosquitto(self.workdir("broker")).start()
        self._brokers.append(broker)
        return broker

    def workdir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.root))
        path.chmod(0o755)
        return path

    def close(self) -> None:
        for broker in self._brokers:
            broker.kill()
        self.postgres.kill()
        shutil.rmtree(self.root, ignore_errors=True)
