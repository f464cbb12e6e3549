"""The worker's counters in the Prometheus text format (0.0.4), without a client library.

Counters and gauges may carry one label; the batch latency is a histogram. Everything is guarded by
one lock: updates happen once per batch, scrapes rarely.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _fmt(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class IngestMetrics:
    """received, stored, readings, duplicates, quarantined{reason}, chain_events{kind}, batch latency,
    lag, queue depth, whether the broker and the database are reachable, and the rollup refreshes."""

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0) -> None:
        self._lock = threading.Lock()
        self._queue_depth = queue_depth
        self.received = 0
        self.stored = 0
        self.readings = 0
        self.duplicates = 0
        self.quarantined: dict[str, int] = {}
        self.chain_events: dict[str, int] = {}
        self.batches = 0
        self.db_errors = 0
        self.lag_s = 0.0
        self.broker_connected = False
        self.database_up = False
        self._bucket_counts = [0] * len(LATENCY_BUCKETS_S)
        self._latency_sum = 0.0
        self.rollup_refreshes = {"ok": 0, "failed": 0}
        self.rollup_refresh_s = 0.0
        self.rollups_refreshed_at = 0.0  # Unix time of the last successful refresh; 0: none yet

    def count_received(self, n: int) -> None:
        with self._lock:
            self.received += n

    def record_batch(self, *, stored: int, readings: int, duplicates: int, quarantined: Iterable[str],
                     chain_events: Iterable[str], seconds: float, lag_s: float) -> None:
        with self._lock:
            self.stored += stored
            self.readings += readings
            self.duplicates += duplicates
            for reason in quarantined:
                self.quarantined[reason] = self.quarantined.get(reason, 0) + 1
            for kind in chain_events:
                self.chain_events[kind] = self.chain_events.get(kind, 0) + 1
            self.batches += 1
            self._latency_sum += seconds
            for i, bound in enumerate(LATENCY_BUCKETS_S):
                if seconds <= bound:
                    self._bucket_counts[i] += 1
            self.lag_s = lag_s
            self.database_up = True

    def record_db_error(self) -> None:
        with self._lock:
            self.db_errors += 1
            self.database_up = False

    def set_database_up(self) -> None:
        with self._lock:
            self.database_up = True

    def record_rollup_refresh(self, *, ok: bool, seconds: float = 0.0) -> None:
        with self._lock:
            self.rollup_refreshes["ok" if ok else "failed"] += 1
            if ok:
                self.rollup_refresh_s = seconds
                self.rollups_refreshed_at = time.time()

    def set_broker_connected(self, connected: bool) -> None:
        with self._lock:
            self.broker_connected = connected

    @property
    def healthy(self) -> bool:
        return self.broker_connected and self.database_up

    def render(self) -> str:
        with self._lock:
            out: list[str] = []

            def metric(name: str, kind: str, help_: str, samples: Iterable[tuple[str, float]]) -> None:
                out.append(f"# HELP mrv_ingest_{name} {help_}")
                out.append(f"# TYPE mrv_ingest_{name} {kind}")
                out.extend(f"mrv_ingest_{name}{labels} {_fmt(v)}" for labels, v in samples)

            metric("received_total", "counter", "MQTT messages received", [("", self.received)])
            metric("stored_total", "counter", "envelopes committed", [("", self.stored)])
            metric("readings_total", "counter", "readings committed", [("", self.readings)])
            metric("duplicates_total", "counter",
                   "envelopes already stored (redelivery, replay of the same bytes)", [("", self.duplicates)])
            metric("quarantined_total", "counter", "messages quarantined, by reason",
                   [(f'{{reason="{r}"}}', n) for r, n in sorted(self.quarantined.items())])
            metric("chain_events_total", "counter", "gaps, chain breaks and late fills recorded",
                   [(f'{{kind="{k}"}}', n) for k, n in sorted(self.chain_events.items())])
            metric("database_errors_total", "counter", "batches that failed for an unreachable database",
                   [("", self.db_errors)])
            buckets = [(f'{{le="{b}"}}', c)
                       for b, c in zip(LATENCY_BUCKETS_S, self._bucket_counts, strict=True)]
            metric("batch_seconds", "histogram", "time to screen and commit one batch (retries included)",
                   [*(("_bucket" + labels, c) for labels, c in buckets), ('_bucket{le="+Inf"}', self.batches),
                    ("_sum", self._latency_sum), ("_count", self.batches)])
            metric("lag_seconds", "gauge", "arrival of the oldest message of the last batch to its commit",
                   [("", self.lag_s)])
            metric("queue_messages", "gauge", "messages received and not yet committed",
                   [("", self._queue_depth())])
            metric("broker_connected", "gauge", "1 while connected to the broker",
                   [("", self.broker_connected)])
            metric("database_up", "gauge", "1 while the last database operation succeeded",
                   [("", self.database_up)])
            metric("rollup_refreshes_total", "counter", "refreshes of the packed rollups by this worker",
                   [(f'{{result="{r}"}}', n) for r, n in self.rollup_refreshes.items()])
            metric("rollup_refresh_seconds", "gauge", "duration of the last successful rollup refresh",
                   [("", self.rollup_refresh_s)])
            metric("rollups_refreshed_timestamp_seconds", "gauge",
                   "Unix time of the last successful rollup refresh (0: none yet)", [("", self.rollups_refreshed_at)])
        return "\n".join(out) + "\n"
