"""Keeping the packed rollups current from the ingest worker.

Reports read whole UTC days from the packed rollups (`refresh_rollups()`, migrations 0005 and 0007) and
raw rows only for the days touched since the last refresh, so a report is exact either way and fast
when the rollups are current. The worker keeps them so: a thread calls `refresh_rollups()` every
`rollups.interval_s` on a connection of its own. The function packs each touched day whole once it has
ended (UTC; today's rows stay raw, migration 0009), under a row lock, so several workers (or a report
refreshing too) take turns rather than collide. A failure is
logged and counted and the next interval tries again: ingest itself never waits for a refresh.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg

from ingest.metrics import IngestMetrics
from mrv_common.logs import log_event

log = logging.getLogger(__name__)


class RollupKeeper:
    """Calls `refresh_rollups()` every `interval_s` from a thread, from `start()` until `close()`."""

    def __init__(self, conninfo: str, interval_s: float, metrics: IngestMetrics,
                 application_name: str = "mrv-rollups") -> None:
        self._conninfo = conninfo
        self._interval_s = interval_s
        self._metrics = metrics
        self._application_name = application_name
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None  # the refresh under way, which close() cancels
        self._thread = threading.Thread(target=self._run, name="rollup-keeper", daemon=True)

    def start(self) -> RollupKeeper:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop; a refresh under way is cancelled (it rolls back, the next run packs those days)."""
        self._stop.set()
        with self._lock:
            if self._conn is not None:
                self._conn.cancel_safe()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.refresh()

    def refresh(self) -> int | None:
        """One refresh now; the device-days of readings packed, or None if it failed."""
        began = time.monotonic()
        try:
            with psycopg.connect(self._conninfo, autocommit=True, application_name=self._application_name,
                                 connect_timeout=10) as conn:
                with self._lock:
                    if self._stop.is_set():
                        return None
                    self._conn = conn
                try:
                    row = conn.execute("SELECT refresh_rollups()").fetchone()
                finally:
                    with self._lock:
                        self._conn = None
        except psycopg.Error as e:
            self._metrics.record_rollup_refresh(ok=False)
            if not self._stop.is_set():
                log_event(log, logging.WARNING, "rollups_refresh_failed", error=str(e).strip())
            return None
        packed = 0 if row is None else int(row[0])
        seconds = time.monotonic() - began
        self._metrics.record_rollup_refresh(ok=True, seconds=seconds)
        log_event(log, logging.INFO, "rollups_refreshed", device_days=packed, seconds=round(seconds, 3))
        return packed
