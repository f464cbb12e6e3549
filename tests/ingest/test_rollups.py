"""The worker keeps the packed rollups current (`ingest.rollups`): real broker, real database."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest

from ingest.metrics import IngestMetrics
from ingest.rollups import RollupKeeper
from managed_services._process import free_port
from managed_services.mosquitto import Mosquitto
from tests.ingest.helpers import (
    Device,
    TestPublisher,
    count,
    enroll,
    now_ms,
    running_worker,
    scalar,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_the_worker_packs_what_it_stored_without_a_report(pg_conninfo: str, mosquitto: Mosquitto,
                                                          project_id: str) -> None:
    """Yesterday's envelopes (an outbox draining) are packed by the worker's own refreshes; today's are
    deferred to the first refresh after midnight (UTC), listed as pending meanwhile (migration 0009)."""
    devices = [Device(f"inv-{i}", project_id) for i in range(3)]
    enroll(pg_conninfo, devices)
    yesterday = now_ms() - 86_400_000
    items = [(d.topic, d.next(time_ms)) for time_ms in [yesterday + i * 60_000 for i in range(20)] + [None] * 5
             for d in devices]
    publisher = TestPublisher(mosquitto.port, "gateway")
    with running_worker(pg_conninfo, mosquitto.port, rollups__interval_s="0.3") as worker:
        publisher.publish(items)
        wait_until(lambda: count(pg_conninfo, "envelopes") == len(items), 30, "every envelope stored")
        packed = ("SELECT coalesce(sum(n_keys), 0) FROM readings_frames", "SELECT count(*) FROM "
                  "(SELECT DISTINCT ts, envelope_id FROM readings WHERE ts < (now() AT TIME ZONE 'UTC')::date) k")
        wait_until(lambda: scalar(pg_conninfo, packed[0]) == scalar(pg_conninfo, packed[1]), 30,
                   "the worker to pack every reading of the days before today")
        wait_until(lambda: worker.metrics.rollup_refreshes["ok"] >= 2, 10, "a second refresh")
        metrics = worker.metrics.render()
    publisher.close()
    assert worker.metrics.rollup_refreshes["failed"] == 0
    assert 'mrv_ingest_rollup_refreshes_total{result="ok"}' in metrics
    assert worker.metrics.rollups_refreshed_at > time.time() - 60
    assert scalar(pg_conninfo, "SELECT count(*) FROM readings_frames WHERE day = (now() AT TIME ZONE 'UTC')::date") == 0
    assert scalar(pg_conninfo, "SELECT count(DISTINCT device_id) FROM rollup_pending() "
                  "WHERE day = (now() AT TIME ZONE 'UTC')::date") == len(devices)


def test_a_failed_refresh_is_logged_without_the_password_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    metrics = IngestMetrics()
    keeper = RollupKeeper(f"host=127.0.0.1 port={free_port()} user=mrv password=s3cret-pw dbname=mrv",
                          60.0, metrics)
    with caplog.at_level(logging.WARNING, logger="ingest.rollups"):
        assert keeper.refresh() is None
    assert metrics.rollup_refreshes == {"ok": 0, "failed": 1} and metrics.rollups_refreshed_at == 0
    assert [r.getMessage() for r in caplog.records] == ["rollups_refresh_failed"]
    assert "s3cret-pw" not in caplog.text


def test_closing_cancels_a_refresh_under_way(pg_conninfo: str) -> None:
    """A refresh blocked by another refresher's row lock (or just long) must not hold up the worker's
    shutdown: close() cancels it, and it rolls back."""
    metrics = IngestMetrics()
    with psycopg.connect(pg_conninfo) as holder:
        before = holder.execute("SELECT * FROM rollup_watermark FOR UPDATE").fetchall()
        keeper = RollupKeeper(pg_conninfo, 0.05, metrics, application_name="keeper-under-test").start()
        wait_until(lambda: scalar(pg_conninfo, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                  "'keeper-under-test' AND wait_event_type = 'Lock'") == 1, 10,
                   "the keeper's refresh to wait for the lock")
        closing = threading.Thread(target=keeper.close)
        began = time.monotonic()
        closing.start()
        closing.join(10)
        assert not closing.is_alive(), "close() waited for the blocked refresh"
        assert time.monotonic() - began < 5
        holder.rollback()
    assert metrics.rollup_refreshes["ok"] == 0
    assert scalar(pg_conninfo, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                  "'keeper-under-test'") == 0
    with psycopg.connect(pg_conninfo) as conn:
        assert conn.execute("SELECT * FROM rollup_watermark").fetchall() == before
