"""Monthly partitions of `readings` (native storage mode): which UTC months a batch needs, and making
sure they exist before the batch's transaction, so the default partition stays a safety net only.

Creating a partition locks the parent table, so it happens in a short transaction of its own, through
the SQL function `ensure_readings_partition` (advisory-locked: workers may race for the same month).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable

import psycopg

from ingest.decide import Admitted
from mrv_common.logs import log_event

log = logging.getLogger(__name__)

Month = tuple[int, int]  # (year, month), UTC
_NAME = re.compile(r"readings_(\d{4})_(\d{2})")


def month_of(ms: int) -> Month:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return t.year, t.month


def add_months(month: Month, n: int) -> Month:
    index = month[0] * 12 + month[1] - 1 + n
    return index // 12, index % 12 + 1


def window(now_ms: int, back: int, ahead: int) -> list[Month]:
    """The months from `back` before the current one to `ahead` after it."""
    current = month_of(now_ms)
    return [add_months(current, n) for n in range(-back, ahead + 1)]


def months_needed(envelopes: Iterable[Admitted]) -> set[Month]:
    """The months of every reading, cheaply: most envelopes hold one interval, so one month."""
    months: set[Month] = set()
    for e in envelopes:
        stamps = [r[1] for r in e.readings]
        first, last = month_of(min(stamps)), month_of(max(stamps))
        if first == last:
            months.add(first)
        else:
            months.update(month_of(ts) for ts in stamps)
    return months


class ReadingsPartitions:
    """Remembers which monthly partitions exist and creates missing ones."""

    def __init__(self) -> None:
        self._known: set[Month] = set()

    def load(self, conn: psycopg.Connection) -> None:
        rows = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                            "WHERE i.inhparent = 'readings'::regclass").fetchall()
        self._known = {(int(m[1]), int(m[2])) for (name,) in rows if (m := _NAME.fullmatch(name))}

    def ensure(self, conn: psycopg.Connection, months: Iterable[Month]) -> list[Month]:
        """Create the partitions of `months` not known to exist; returns those created or found."""
        missing = sorted(set(months) - self._known)
        for year, month in missing:
            with conn.transaction():
                name = conn.execute("SELECT ensure_readings_partition(%s)",
                                    [dt.date(year, month, 1)]).fetchone()
            self._known.add((year, month))
            log_event(log, logging.INFO, "partition_ready", partition=name[0] if name else None)
        return missing
