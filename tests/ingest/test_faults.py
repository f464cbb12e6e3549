"""Two `mrv ingest run` workers sharing the subscription split the load and lose or duplicate
nothing. The fault runs (R1 kill -9 of a worker, R3 PostgreSQL restart, R10) are in tests/faults."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from managed_services._process import free_port
from managed_services.mosquitto import Mosquitto
from tests.faults.ingest_faults import audit, signed_load, workers
from tests.faults.record import FaultResult
from tests.ingest.helpers import BackgroundLoad, count, wait_until
from tests.ingest.test_worker import sample, scrape

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_two_workers_share_the_subscription(pg_conninfo: str, mosquitto: Mosquitto, project_id: str,
                                            tmp_path: Path) -> None:
    items = signed_load(project_id, pg_conninfo, 30, 60)
    ports = [free_port(), free_port()]
    with workers(pg_conninfo, mosquitto.port, tmp_path) as running:
        for i, port in enumerate(ports):
            running.start(f"ingest-{i}", http__port=str(port))
        BackgroundLoad(mosquitto.port, items, rate=2000).join()
        wait_until(lambda: count(pg_conninfo, "envelopes") == len(items), 60, "every envelope stored")
        stored = [sample(scrape(port)[1], "mrv_ingest_stored_total") for port in ports]
        duplicates = [sample(scrape(port)[1], "mrv_ingest_duplicates_total") for port in ports]
        result = FaultResult("shared", "two workers on the shared subscription")
        audit(result, pg_conninfo, items)
        print(f"shared subscription: stored per worker {stored}, lost {result.lost}, "
              f"duplicated {result.duplicated}")
        assert (result.lost, result.duplicated, result.wrongly_accepted, result.failed_checks) == (0, 0, 0, [])
        assert sum(stored) == len(items) and min(stored) > 0 and duplicates == [0, 0]
        procs = list(running.procs.values())
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            assert proc.wait(15) == 0
        running.procs.clear()
