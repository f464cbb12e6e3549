"""Loading a monitoring period from PostgreSQL into `PeriodData`: the I/O shell around `columns`.

Two sources give the same data, reading for reading:

* `"rollup"` reads each whole UTC day from the packed rollups (one readings frame per device and day,
  ingest/migrations/0007_reading_frames.sql; one row of envelopes per device and day of device time,
  0005_rollups.sql) and raw rows only where needed: the partial days at the edges of the window, days
  touched by envelopes the last `refresh_rollups` has not packed yet, and days that have not ended
  (deferred until they have, 0009_rollup_deferral.sql).
* `"scan"` reads every raw reading of the window: the reference, and the benchmark's baseline.

Per register, the window runs from the last usable reading at or before the period start to the first
usable one at or after its end (the engine credits nothing outside the period). Read under one
REPEATABLE READ snapshot (`connect`, or `connect_pair` for two connections) so that rollups and raw
rows agree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import psycopg
from psycopg import sql

from mrv_engine.columns import (
    EnvelopeColumns,
    EnvelopeHashes,
    Frame,
    ReadingColumns,
    distinct_sorted,
    hash_lookup,
    uncovered,
    utc_days,
)
from mrv_engine.config import ProjectConfig
from mrv_engine.double_claim import Claim
from mrv_engine.net_generation import Settlement
from mrv_engine.period_data import PeriodData
from mrv_engine.series import I64, UNUSABLE, ArrivalSeries, MeterReadings, SampleSeries
from mrv_engine.timespan import Span
from protocol.metrics import METRICS, Metric, MetricKind

Source = Literal["rollup", "scan"]
SOURCES: tuple[Source, ...] = ("rollup", "scan")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAY = dt.date(1970, 1, 1)

_RAW_READINGS = {
    True: "SELECT (extract(epoch FROM ts) * 1000)::int8, value::int8, quality, envelope_id FROM readings "
          "WHERE device_id = %s AND metric = %s AND ts >= %s AND ts < %s ORDER BY ts, envelope_id",
    False: "SELECT (extract(epoch FROM ts) * 1000)::int8, value::float8, quality, envelope_id FROM readings "
           "WHERE device_id = %s AND metric = %s AND ts >= %s AND ts < %s ORDER BY ts, envelope_id",
}
_RAW_ENVELOPES = ("SELECT id, (extract(epoch FROM device_time) * 1000)::int8, "
                  "(extract(epoch FROM received_at) * 1000)::int8, hash FROM envelopes "
                  "WHERE device_id = %s AND device_time >= %s AND device_time < %s ORDER BY device_time, id")
Kind = Literal["readings", "envelopes"]
# Packed days of many devices in one round trip: rows of (device, day, columns...).
_PACKED: dict[Kind, str] = {
    "readings": "SELECT device_id, day - DATE '1970-01-01', ts_ms, envelope_ids, metrics, counts, vals, key_index, "
                "quality FROM readings_frames WHERE device_id = ANY(%s) AND day BETWEEN %s AND %s",
    "envelopes": "SELECT device_id, day - DATE '1970-01-01', ids, device_time_ms, received_ms, hashes "
                 "FROM envelopes_packed WHERE device_id = ANY(%s) AND day BETWEEN %s AND %s",
}
_HASHES = "SELECT id, (extract(epoch FROM device_time) * 1000)::int8, 0::int8, hash FROM envelopes WHERE id = ANY(%s)"
# Per register: the last usable reading at or before the period start and the first at or after its end,
# for all registers in one round trip.
_BRACKETS = """
SELECT (extract(epoch FROM (SELECT max(ts) FROM readings r WHERE r.device_id = k.device_id
            AND r.metric = k.metric AND r.ts <= %(start)s AND r.quality & %(unusable)s = 0)) * 1000)::int8,
       (extract(epoch FROM (SELECT min(ts) FROM readings r WHERE r.device_id = k.device_id
            AND r.metric = k.metric AND r.ts >= %(end)s AND r.quality & %(unusable)s = 0)) * 1000)::int8
FROM unnest(%(devices)s::text[], %(metrics)s::int2[]) WITH ORDINALITY AS k(device_id, metric, i) ORDER BY k.i"""


def connect(conninfo: str) -> psycopg.Connection:
    """A read-only REPEATABLE READ connection: every query of a report sees one snapshot."""
    conn = psycopg.connect(conninfo)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


@contextlib.contextmanager
def connect_pair(conninfo: str) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """Two `connect` connections on one snapshot (the first exports it, the second imports it), so that
    a report reads its packed days over both at once: the server decodes and sends them on two cores."""
    with connect(conninfo) as conn, connect(conninfo) as helper:
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        helper.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(row[0])))
        yield conn, helper


def refresh_rollups(conninfo: str) -> int:
    """Pack the days touched since the last refresh (own transaction); returns the days packed. On a hot
    standby, which refuses writes, nothing: the primary's ingest workers keep the rollups it replays."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if standby is not None and standby[0]:
            return 0
        row = conn.execute("SELECT refresh_rollups()").fetchone()
    return 0 if row is None else int(row[0])


def _time(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=ms)


def _date(day: int) -> dt.date:
    return _EPOCH_DAY + dt.timedelta(days=day)


def _integer(metric: Metric) -> bool:
    return METRICS[metric].kind is MetricKind.CUMULATIVE


@dataclass(frozen=True, eq=False)
class LoadedPeriod:
    data: PeriodData
    envelope_ids: I64  # sorted, distinct: every envelope whose readings the data holds
    source: Source


class _Reader:
    """Reads series from one source. On the rollup path the packed rows of a report's window are fetched
    once (`prefetch`), by device: readings frames keyed by UTC day of the reading, envelope rows by UTC
    day of device time."""

    def __init__(self, conn: psycopg.Connection, source: Source, helper: psycopg.Connection | None = None) -> None:
        self.conn, self.source, self.helper = conn, source, helper
        # the (device, day) of frames and of envelope rows touched by envelopes past the watermark
        self.pending: dict[Kind, set[tuple[str, int]]] = {"readings": set(), "envelopes": set()}
        self.packed: dict[tuple[Kind, str], list[tuple[int, Any]]] = {}  # see `_fetch`
        self.fetched = (0, -1)  # the UTC days `packed` holds
        if source == "rollup":
            rows = conn.execute("SELECT device_id, metric IS NULL, day - DATE '1970-01-01' FROM rollup_pending()")
            for device, envelopes, day in rows.fetchall():
                self.pending["envelopes" if envelopes else "readings"].add((device, day))

    def _plan(self, lo_ms: int, hi_ms: int, kind: Kind, device: str) -> tuple[int, int, list[int]]:
        """The packed days to read (and the first and last day to ask for): every day the window touches
        that has no envelope past the watermark; the window's part of them is cut out after decoding."""
        if self.source == "scan":
            return 0, -1, []
        days = utc_days(lo_ms, hi_ms)
        return days[0], days[-1], [d for d in days if (device, d) not in self.pending[kind]]

    def brackets(self, registers: Sequence[tuple[str, Metric]], period: Span) -> list[tuple[int, int]]:
        """Per register, the window [last usable reading at or before the period start, first usable at or
        after its end], the period's own bound where there is none."""
        rows = self.conn.execute(_BRACKETS, {
            "start": _time(period.start_ms), "end": _time(period.end_ms), "unusable": UNUSABLE,
            "devices": [d for d, _ in registers], "metrics": [int(m) for _, m in registers]}).fetchall()
        return [(period.start_ms if lo is None else int(lo), period.end_ms if hi is None else int(hi))
                for lo, hi in rows]

    def _fetch(self, wanted: Sequence[tuple[Kind, str]], first: int, last: int
               ) -> dict[tuple[Kind, str], list[tuple[int, Any]]]:
        """The packed days first..last of each (kind, device), decoded: (day, `Frame` or `EnvelopeColumns`)."""
        days = [_date(first), _date(last)]

        def read(conn: psycopg.Connection, part: slice) -> list[tuple[Any, ...]]:
            rows = []
            for kind, query in _PACKED.items():
                devices = [d for k, d in wanted if k == kind][part]
                if devices:  # binary: raw bytea, a third of the text form's transfer
                    rows += [(kind, *row) for row in conn.execute(query, [devices, *days], binary=True)]
            return rows

        if self.helper is None:
            rows = read(self.conn, slice(None))
        else:  # half of the devices over each connection: the server packs and sends on two cores
            with ThreadPoolExecutor(1) as pool:
                other = pool.submit(read, self.helper, slice(None, None, 2))
                rows = read(self.conn, slice(1, None, 2)) + other.result()
        found: dict[tuple[Kind, str], list[tuple[int, Any]]] = {}
        for kind, device, day, *columns in rows:
            decoded = Frame(day, *columns) if kind == "readings" else EnvelopeColumns.unpack(*columns)
            found.setdefault((kind, device), []).append((day, decoded))
        return found

    def prefetch(self, wanted: Sequence[tuple[Kind, str]], lo_ms: int, hi_ms: int) -> None:
        """Fetch the packed days of [lo_ms, hi_ms] of many devices at once (see `_fetch`)."""
        if self.source == "rollup":
            days = utc_days(lo_ms, hi_ms)
            self.packed, self.fetched = self._fetch(wanted, days[0], days[-1]), (days[0], days[-1])

    def _packed(self, kind: Kind, device: str, first: int, last: int, days: Sequence[int]) -> list[Any]:
        """The decoded packed `days` of a device, prefetched or fetched now."""
        if self.fetched[0] <= first and last <= self.fetched[1]:
            rows = self.packed.get((kind, device), [])
        else:
            rows = self._fetch([(kind, device)], first, last).get((kind, device), [])
        wanted = set(days)
        return [decoded for day, decoded in rows if day in wanted]

    def readings(self, device: str, metric: Metric, lo_ms: int, hi_ms: int) -> ReadingColumns:
        integer = _integer(metric)
        first, last, days = self._plan(lo_ms, hi_ms, "readings", device)
        parts = [frame.readings(int(metric), integer=integer)
                 for frame in self._packed("readings", device, first, last, days)]
        for a, b in uncovered(lo_ms, hi_ms, days):
            rows = self.conn.execute(_RAW_READINGS[integer], [device, int(metric), _time(a), _time(b)])
            parts.append(ReadingColumns.of_rows(rows.fetchall(), integer=integer))
        return ReadingColumns.concat(parts, integer=integer).between(lo_ms, hi_ms)

    def envelopes(self, device: str, lo_ms: int, hi_ms: int) -> EnvelopeColumns:
        first, last, days = self._plan(lo_ms, hi_ms, "envelopes", device)
        parts = self._packed("envelopes", device, first, last, days)
        for a, b in uncovered(lo_ms, hi_ms, days):
            parts.append(EnvelopeColumns.of_rows(
                self.conn.execute(_RAW_ENVELOPES, [device, _time(a), _time(b)]).fetchall()))
        return EnvelopeColumns.concat(parts).between(lo_ms, hi_ms)

    def hashes(self, known: Sequence[EnvelopeColumns], ids: I64) -> EnvelopeHashes:
        """The hashes of the envelopes `ids`."""
        hashes, missing = hash_lookup(known, ids)
        if missing.size:  # envelopes whose device time lies far from their readings' time
            rows = self.conn.execute(_HASHES, [missing.tolist()]).fetchall()
            hashes = np.concatenate((hashes, hash_lookup([EnvelopeColumns.of_rows(rows)], missing)[0]))
        return EnvelopeHashes(hashes, background=True)  # sorted while the period is assessed


def _sample_keys(config: ProjectConfig) -> list[tuple[str, Metric]]:
    keys: dict[tuple[str, Metric], None] = {}
    for meter in config.meters:
        keys[(meter.device_id, Metric.ACTIVE_POWER_W)] = None
        if meter.irradiance_device is not None:
            keys[(meter.irradiance_device, Metric.IRRADIANCE_W_M2)] = None
        if meter.wind_speed_device is not None:
            keys[(meter.wind_speed_device, Metric.WIND_SPEED_M_S)] = None
    return list(keys)


def load_period(conn: psycopg.Connection, config: ProjectConfig, period: Span, *, source: Source = "rollup",
                settlement: Settlement | None = None, claims: Iterable[Claim] = (),
                helper: psycopg.Connection | None = None) -> LoadedPeriod:
    """The project's data for `period` from the database, with every envelope it uses; `helper`, a
    second connection on the same snapshot (`connect_pair`), shares the reading of packed days."""
    reader = _Reader(conn, source, helper)
    used: list[ReadingColumns] = []
    meters: dict[str, MeterReadings] = {}
    registers = [(meter, metric) for meter in config.meters
                 for metric in (Metric.ENERGY_EXPORT_WH, Metric.ENERGY_IMPORT_WH)[:1 + meter.import_register]]
    windows = dict(zip(((m.id, metric) for m, metric in registers),
                       reader.brackets([(m.device_id, metric) for m, metric in registers], period), strict=True))
    window = [min([period.start_ms, *(lo for lo, _ in windows.values())]),
              max([period.end_ms, *(hi for _, hi in windows.values())])]
    sample_keys = _sample_keys(config)
    senders = dict.fromkeys([m.device_id for m in config.meters] + [d for d, _ in sample_keys])
    reader.prefetch([(kind, d) for kind in ("readings", "envelopes") for d in senders], *window)
    for meter in config.meters:
        series = []
        for metric in (Metric.ENERGY_EXPORT_WH, Metric.ENERGY_IMPORT_WH)[:1 + meter.import_register]:
            lo, hi = windows[(meter.id, metric)]
            columns = reader.readings(meter.device_id, metric, lo, hi)
            used.append(columns)
            series.append(columns.register())
        meters[meter.id] = MeterReadings(series[0], series[1] if len(series) > 1 else None)
    samples: dict[tuple[str, Metric], SampleSeries] = {}
    for device, metric in sample_keys:
        columns = reader.readings(device, metric, window[0], window[1])
        used.append(columns)
        if columns.ts_ms.size:
            samples[(device, metric)] = columns.samples()
    devices = dict.fromkeys([m.device_id for m in config.meters] + [d for d, _ in samples])
    envelopes = [reader.envelopes(device, window[0], window[1]) for device in devices]
    arrivals: dict[str, ArrivalSeries] = {}
    for device, stored in zip(devices, envelopes, strict=True):
        arrived = stored.arrivals(period.start_ms, period.end_ms)
        if arrived.device_time_ms.size:
            arrivals[device] = arrived
    ids = distinct_sorted([c.envelope_ids for c in used])
    data = PeriodData(period=period, meters=meters, samples=samples, arrivals=arrivals, settlement=settlement,
                      claims=tuple(claims), envelope_hashes=reader.hashes(envelopes, ids))
    return LoadedPeriod(data, ids, source)
