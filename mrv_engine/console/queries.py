"""What the console shows, read from PostgreSQL: plain functions of a psycopg connection returning pydantic
models, which are also the API's response models (so the OpenAPI schema says exactly what comes back).

Nothing secret leaves here: quarantined payloads only as their size, SHA-256 and first bytes in hex;
device keys as their kid and validity, never the broker password hashes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from enum import StrEnum
from pathlib import Path
from typing import Literal

import psycopg
from pydantic import BaseModel, Field

from anchoring.checkpoint import Checkpoint, open_checkpoint
from anchoring.errors import AnchoringError
from anchoring.note import Verifier
from anchoring.store import consistency_proof, log_size
from anchoring.verify import verify_consistency
from protocol.metrics import METRICS_BY_NAME

MetricName = StrEnum("MetricName", {name.upper(): name for name in METRICS_BY_NAME})  # type: ignore[misc]
QUARANTINE_HEAD_BYTES = 32  # how much of a refused payload the console shows (hex)
Signature = Literal["verified", "invalid", "unchecked"]  # of a checkpoint, against the log's key


class NotFound(LookupError):
    """An unknown id (the API answers 404 with the message)."""


# ---------------------------------------------------------------- models


class ReasonCount(BaseModel):
    reason: str
    count: int


class KeyState(BaseModel):
    kid: str = Field(description="key id, hex")
    status: Literal["active", "revoked"]
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    revoked_at: dt.datetime | None
    valid_now: bool = Field(description="active and now inside [valid_from, valid_until)")


class DeviceStatus(BaseModel):
    id: str
    project_id: str
    role: str
    kind: str
    capacity_w: int
    enrolled_at: dt.datetime
    key_status: Literal["active", "revoked", "expired", "none"] = Field(
        description="active: a key is valid now; revoked: every key revoked; expired: keys only outside their window")
    keys: list[KeyState]
    online: bool = Field(description="an envelope arrived within the configured online_within_s")
    last_seen: dt.datetime | None = Field(description="arrival time of the latest envelope")
    last_device_time: dt.datetime | None = Field(description="latest device time of a stored envelope")
    envelopes: int
    readings: int
    first_seq: int | None
    last_seq: int | None
    missing_seqs: int = Field(description="sequence numbers missing between the first and last stored envelope")
    chain_breaks: int = Field(description="chain_break events recorded by ingest")
    gap_events: int = Field(description="gap events recorded by ingest")
    quarantined: int
    quarantine_by_reason: list[ReasonCount]


class SeqRange(BaseModel):
    first: int
    last: int


class ChainEvent(BaseModel):
    id: int
    kind: str
    seq_from: int
    seq_to: int
    detail: str
    recorded_at: dt.datetime


class MetricCount(BaseModel):
    metric: str
    readings: int
    first: dt.datetime
    last: dt.datetime


class DeviceDetail(DeviceStatus):
    missing_ranges: list[SeqRange] = Field(description="the first 100 runs of missing sequence numbers")
    chain_events: list[ChainEvent] = Field(description="the latest 100 chain events")
    metrics: list[MetricCount]


class Project(BaseModel):
    id: str
    created_at: dt.datetime
    devices: int
    envelopes: int
    last_seen: dt.datetime | None
    has_config: bool = Field(description="a configuration file exists, so reports can be generated")


class ProjectDetail(Project):
    device_status: list[DeviceStatus]


class ReadingBucket(BaseModel):
    start: dt.datetime = Field(description="start of the bucket")
    n: int
    avg: float
    min: float
    max: float


class ReadingSeries(BaseModel):
    device_id: str
    metric: str
    unit: str
    start: dt.datetime
    end: dt.datetime
    bucket_s: float
    buckets: list[ReadingBucket]


class HourCount(BaseModel):
    hour: dt.datetime
    envelopes: int


class FleetSummary(BaseModel):
    projects: int
    devices: int
    online: int
    offline: int = Field(description="seen before, but not within online_within_s")
    never_seen: int
    online_within_s: int
    envelopes: int
    missing_seqs: int
    chain_breaks: int
    quarantined: int
    log_size: int
    latest_checkpoint: int | None
    envelopes_per_hour: list[HourCount] = Field(
        description="envelopes per hour of device time over the last 24 h of data")


class QuarantineItem(BaseModel):
    id: int
    received_at: dt.datetime
    topic: str
    reason: str
    detail: str
    device_id: str | None
    seq: int | None
    raw_size: int = Field(description="bytes received")
    raw_sha256: str = Field(description="SHA-256 of the bytes kept (at most the envelope size limit)")
    raw_head_hex: str = Field(description=f"the first {QUARANTINE_HEAD_BYTES} bytes kept, hex")


class QuarantinePage(BaseModel):
    items: list[QuarantineItem]
    next_before: int | None = Field(description="pass as `before` for the next (older) page; null at the end")


class DeviceReasonCount(BaseModel):
    device_id: str | None
    reason: str
    count: int


class QuarantineCounts(BaseModel):
    total: int
    by_reason: list[ReasonCount]
    by_device: list[DeviceReasonCount]


class AnchorStatus(BaseModel):
    checkpoint_size: int
    ledger: str
    status: Literal["signed", "anchored", "confirmed"]
    created_at: dt.datetime
    anchored_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    locator: str | None = Field(description="where the ledger recorded it (transaction / record), as stored")
    receipt_matches_checkpoint: bool | None = Field(
        description="the receipt names the SHA-256 of this signed checkpoint; null before a receipt")


class CheckpointStatus(BaseModel):
    size: int
    root: str = Field(description="root hash, hex")
    origin: str | None
    created_at: dt.datetime
    signature: Signature = Field(
        description="against the log's verifier key (log_vkey); unchecked when none is configured")
    signature_error: str | None
    root_matches_note: bool = Field(description="the stored root is the one the signed note names")
    previous_size: int | None
    consistent_with_previous: bool | None = Field(
        description="RFC 9162 consistency proof from the previous checkpoint verifies; null for the first")
    consistency_error: str | None
    anchors: list[AnchorStatus]


class PeriodInfo(BaseModel):
    period: str = Field(description="YYYY-MM, usable in reports/{period}")
    first_day: dt.date
    last_day: dt.date
    envelopes: int


# ---------------------------------------------------------------- projects and devices


# Counts come from the packed rollups (`envelope_counts`, `reading_counts`, `envelope_months`, migration
# 0008), so no page scans every envelope or reading. A device's "last seen" is the arrival of its newest
# envelope (highest seq), found through the (device_id, seq) index.


def _now(conn: psycopg.Connection) -> dt.datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def list_projects(conn: psycopg.Connection, projects_dir: Path | None = None) -> list[Project]:
    rows = conn.execute(
        "SELECT p.id, p.created_at, count(d.id), coalesce(sum(c.envelopes), 0), max(l.received_at) "
        "FROM projects p LEFT JOIN devices d ON d.project_id = p.id "
        "LEFT JOIN envelope_counts(ARRAY(SELECT id FROM devices)) c ON c.device_id = d.id "
        "LEFT JOIN LATERAL (SELECT received_at FROM envelopes e WHERE e.device_id = d.id "
        "                   ORDER BY seq DESC LIMIT 1) l ON true "
        "GROUP BY p.id, p.created_at ORDER BY p.id").fetchall()
    return [Project(id=i, created_at=c, devices=d, envelopes=int(n), last_seen=s,
                    has_config=projects_dir is not None and (projects_dir / f"{i}.toml").is_file())
            for i, c, d, n, s in rows]


def get_project(conn: psycopg.Connection, project_id: str, projects_dir: Path | None = None,
                online_within_s: int = 900) -> ProjectDetail:
    project = next((p for p in list_projects(conn, projects_dir) if p.id == project_id), None)
    if project is None:
        raise NotFound(f"no project {project_id}")
    devices = list_devices(conn, project_id, online_within_s=online_within_s)
    return ProjectDetail(**project.model_dump(), device_status=devices)


def _key_status(keys: list[KeyState]) -> Literal["active", "revoked", "expired", "none"]:
    if not keys:
        return "none"
    if any(k.valid_now for k in keys):
        return "active"
    if all(k.status == "revoked" for k in keys):
        return "revoked"
    return "expired"


def list_devices(conn: psycopg.Connection, project_id: str | None = None, *, device_id: str | None = None,
                 online_within_s: int = 900, count_readings: bool = True) -> list[DeviceStatus]:
    """Every device (of a project, or one device) with its keys, arrivals, chain and quarantine state.
    `count_readings` False leaves `readings` 0 and spares counting them."""
    now = _now(conn)
    where = [project_id, project_id, device_id, device_id]
    devices = conn.execute(
        "SELECT id, project_id, role, kind, capacity_w, enrolled_at FROM devices "
        "WHERE (%s::text IS NULL OR project_id = %s) AND (%s::text IS NULL OR id = %s) ORDER BY project_id, id",
        where).fetchall()
    if not devices:
        return []
    ids = [d[0] for d in devices]
    keys: dict[str, list[KeyState]] = {}
    for did, kid, status, valid_from, valid_until, revoked_at in conn.execute(
            "SELECT device_id, kid, status, valid_from, valid_until, revoked_at FROM device_keys "
            "WHERE device_id = ANY(%s) ORDER BY device_id, valid_from", [ids]):
        valid_now = status == "active" and valid_from <= now and (valid_until is None or now < valid_until)
        keys.setdefault(did, []).append(KeyState(kid=bytes(kid).hex(), status=status, valid_from=valid_from,
                                                 valid_until=valid_until, revoked_at=revoked_at,
                                                 valid_now=valid_now))
    envelopes = {r[0]: r[1:] for r in conn.execute(
        "SELECT d.id, c.envelopes, f.seq, l.seq, l.received_at, t.device_time "
        "FROM devices d JOIN envelope_counts(%s) c ON c.device_id = d.id "
        "CROSS JOIN LATERAL (SELECT seq, received_at FROM envelopes e WHERE e.device_id = d.id "
        "                    ORDER BY seq DESC LIMIT 1) l "
        "CROSS JOIN LATERAL (SELECT seq FROM envelopes e WHERE e.device_id = d.id ORDER BY seq LIMIT 1) f "
        "CROSS JOIN LATERAL (SELECT device_time FROM envelopes e WHERE e.device_id = d.id "
        "                    ORDER BY device_time DESC LIMIT 1) t", [ids])}
    readings: dict[str, int] = {} if not count_readings else dict(conn.execute(
        "SELECT device_id, sum(readings)::bigint FROM reading_counts(%s) GROUP BY device_id", [ids]).fetchall())
    events: dict[tuple[str, str], int] = {(d, k): n for d, k, n in conn.execute(
        "SELECT device_id, kind, count(*) FROM chain_events WHERE device_id = ANY(%s) GROUP BY 1, 2", [ids])}
    quarantine: dict[str, list[ReasonCount]] = {}
    for did, reason, n in conn.execute(
            "SELECT device_id, reason, count(*) FROM quarantine WHERE device_id = ANY(%s) "
            "GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2", [ids]):
        quarantine.setdefault(did, []).append(ReasonCount(reason=reason, count=n))
    online_after = now - dt.timedelta(seconds=online_within_s)
    out = []
    for did, project, role, kind, capacity, enrolled in devices:
        count, first_seq, last_seq, last_seen, last_time = envelopes.get(did, (0, None, None, None, None))
        device_keys = keys.get(did, [])
        out.append(DeviceStatus(
            id=did, project_id=project, role=role, kind=kind, capacity_w=capacity, enrolled_at=enrolled,
            key_status=_key_status(device_keys), keys=device_keys,
            online=last_seen is not None and last_seen >= online_after, last_seen=last_seen,
            last_device_time=last_time, envelopes=count, readings=readings.get(did, 0), first_seq=first_seq,
            last_seq=last_seq, missing_seqs=0 if last_seq is None else last_seq - first_seq + 1 - count,
            chain_breaks=events.get((did, "chain_break"), 0), gap_events=events.get((did, "gap"), 0),
            quarantined=sum(r.count for r in quarantine.get(did, [])),
            quarantine_by_reason=quarantine.get(did, [])))
    return out


def get_device(conn: psycopg.Connection, device_id: str, *, online_within_s: int = 900) -> DeviceDetail:
    found = list_devices(conn, device_id=device_id, online_within_s=online_within_s)
    if not found:
        raise NotFound(f"no device {device_id}")
    ranges = [] if not found[0].missing_seqs else conn.execute(  # walks the device's envelopes
        "SELECT seq + 1, next_seq - 1 FROM (SELECT seq, lead(seq) OVER (ORDER BY seq) AS next_seq "
        "FROM envelopes WHERE device_id = %s) s WHERE next_seq > seq + 1 ORDER BY seq LIMIT 100",
        [device_id]).fetchall()
    events = conn.execute("SELECT id, kind, seq_from, seq_to, detail, recorded_at FROM chain_events "
                          "WHERE device_id = %s ORDER BY id DESC LIMIT 100", [device_id]).fetchall()
    names = {info.metric.value: name for name, info in METRICS_BY_NAME.items()}
    metrics = conn.execute(
        "SELECT c.metric, c.readings, "
        "(SELECT min(ts) FROM readings r WHERE r.device_id = c.device_id AND r.metric = c.metric), "
        "(SELECT max(ts) FROM readings r WHERE r.device_id = c.device_id AND r.metric = c.metric) "
        "FROM reading_counts(%s) c ORDER BY c.metric", [[device_id]]).fetchall()
    return DeviceDetail(
        **found[0].model_dump(),
        missing_ranges=[SeqRange(first=a, last=b) for a, b in ranges],
        chain_events=[ChainEvent(id=i, kind=k, seq_from=a, seq_to=b, detail=d, recorded_at=r)
                      for i, k, a, b, d, r in events],
        metrics=[MetricCount(metric=names.get(m, str(m)), readings=n, first=f, last=la) for m, n, f, la in metrics])


def device_readings(conn: psycopg.Connection, device_id: str, metric: str, start: dt.datetime | None = None,
                    end: dt.datetime | None = None, points: int = 500) -> ReadingSeries:
    """A device's readings of `metric` in [start, end) averaged into at most `points` equal buckets (in SQL).
    Without `end`: just after its latest reading of the metric; without `start`: 24 h before `end`."""
    info = METRICS_BY_NAME.get(metric)
    if info is None:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS_BY_NAME)}")
    if not 1 <= points <= 5000:
        raise ValueError("points must be between 1 and 5000")
    if conn.execute("SELECT 1 FROM devices WHERE id = %s", [device_id]).fetchone() is None:
        raise NotFound(f"no device {device_id}")
    if end is None:
        row = conn.execute("SELECT max(ts) FROM readings WHERE device_id = %s AND metric = %s",
                           [device_id, int(info.metric)]).fetchone()
        latest = row[0] if row is not None else None
        end = (latest + dt.timedelta(milliseconds=1)) if latest is not None else _now(conn)
    start = start if start is not None else end - dt.timedelta(days=1)
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end need a UTC offset (e.g. 2026-06-01T00:00:00Z)")
    if start >= end:
        raise ValueError("start must be before end")
    span_ms = (end - start) // dt.timedelta(milliseconds=1)
    width_ms = max(1, -(-span_ms // points))  # ceil: at most `points` buckets cover [start, end)
    rows = conn.execute(
        "SELECT floor((extract(epoch FROM ts) * 1000 - %(s)s) / %(w)s)::int8 AS b, count(*), avg(value)::float8, "
        "min(value)::float8, max(value)::float8 FROM readings "
        "WHERE device_id = %(d)s AND metric = %(m)s AND ts >= %(start)s AND ts < %(end)s GROUP BY b ORDER BY b",
        {"s": int(start.timestamp() * 1000), "w": width_ms, "d": device_id, "m": int(info.metric),
         "start": start, "end": end}).fetchall()
    buckets = [ReadingBucket(start=start + dt.timedelta(milliseconds=b * width_ms), n=n, avg=a, min=lo, max=hi)
               for b, n, a, lo, hi in rows]
    return ReadingSeries(device_id=device_id, metric=info.name, unit=info.unit, start=start, end=end,
                         bucket_s=width_ms / 1000, buckets=buckets)


def fleet_summary(conn: psycopg.Connection, online_within_s: int = 900) -> FleetSummary:
    devices = list_devices(conn, online_within_s=online_within_s, count_readings=False)
    seen = [d for d in devices if d.last_seen is not None]
    newest = max((d.last_device_time for d in devices if d.last_device_time is not None), default=None)
    hours = [] if newest is None else conn.execute(  # each device's last day, through its device-time index
        "SELECT date_trunc('hour', e.device_time), count(*) FROM devices d CROSS JOIN LATERAL "
        "(SELECT device_time FROM envelopes e WHERE e.device_id = d.id AND e.device_time > %s) e "
        "GROUP BY 1 ORDER BY 1", [newest - dt.timedelta(hours=24)]).fetchall()
    quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()
    checkpoint = conn.execute("SELECT max(size) FROM checkpoints").fetchone()
    projects = conn.execute("SELECT count(*) FROM projects").fetchone()
    online = sum(d.online for d in devices)
    return FleetSummary(
        projects=projects[0] if projects else 0, devices=len(devices), online=online,
        offline=len(seen) - online, never_seen=len(devices) - len(seen), online_within_s=online_within_s,
        envelopes=sum(d.envelopes for d in devices), missing_seqs=sum(d.missing_seqs for d in devices),
        chain_breaks=sum(d.chain_breaks for d in devices), quarantined=quarantined[0] if quarantined else 0,
        log_size=log_size(conn), latest_checkpoint=checkpoint[0] if checkpoint else None,
        envelopes_per_hour=[HourCount(hour=h, envelopes=n) for h, n in hours])


# ---------------------------------------------------------------- quarantine


def list_quarantine(conn: psycopg.Connection, reason: str | None = None, device_id: str | None = None,
                    limit: int = 50, before_id: int | None = None) -> QuarantinePage:
    """Newest first, `limit` at a time; `before_id` is the previous page's `next_before` (keyset pagination)."""
    if not 1 <= limit <= 500:
        raise ValueError("limit must be between 1 and 500")
    rows = conn.execute(
        "SELECT id, received_at, topic, reason, detail, device_id, seq, raw_size, sha256(raw), "
        "substring(raw FROM 1 FOR %s) FROM quarantine "
        "WHERE (%s::bigint IS NULL OR id < %s) AND (%s::text IS NULL OR reason = %s) "
        "AND (%s::text IS NULL OR device_id = %s) ORDER BY id DESC LIMIT %s",
        [QUARANTINE_HEAD_BYTES, before_id, before_id, reason, reason, device_id, device_id, limit + 1]).fetchall()
    items = [QuarantineItem(id=i, received_at=r, topic=t, reason=why, detail=d, device_id=dev, seq=s, raw_size=n,
                            raw_sha256=bytes(h).hex(), raw_head_hex=bytes(head).hex())
             for i, r, t, why, d, dev, s, n, h, head in rows[:limit]]
    return QuarantinePage(items=items, next_before=items[-1].id if len(rows) > limit else None)


def quarantine_counts(conn: psycopg.Connection) -> QuarantineCounts:
    rows = conn.execute("SELECT device_id, reason, count(*) FROM quarantine GROUP BY 1, 2 "
                        "ORDER BY 3 DESC, 2, 1").fetchall()
    by_reason: dict[str, int] = {}
    for _, reason, n in rows:
        by_reason[reason] = by_reason.get(reason, 0) + n
    return QuarantineCounts(
        total=sum(by_reason.values()),
        by_reason=[ReasonCount(reason=r, count=n) for r, n in sorted(by_reason.items(), key=lambda x: (-x[1], x[0]))],
        by_device=[DeviceReasonCount(device_id=d, reason=r, count=n) for d, r, n in rows])


# ---------------------------------------------------------------- checkpoints and anchors


def list_anchors(conn: psycopg.Connection, checkpoint_sizes: list[int] | None = None) -> list[AnchorStatus]:
    """Anchors as stored (newest checkpoint first); whether each receipt names its signed checkpoint."""
    rows = conn.execute(
        "SELECT a.checkpoint_size, a.ledger, a.status, a.created_at, a.anchored_at, a.confirmed_at, a.receipt, "
        "c.note FROM anchors a JOIN checkpoints c ON c.size = a.checkpoint_size "
        "WHERE %s::bigint[] IS NULL OR a.checkpoint_size = ANY(%s) ORDER BY a.checkpoint_size DESC, a.ledger",
        [checkpoint_sizes, checkpoint_sizes]).fetchall()
    out = []
    for size, ledger, status, created, anchored, confirmed, receipt, note in rows:
        locator = matches = None
        if isinstance(receipt, dict):
            locator = str(receipt.get("locator"))
            matches = receipt.get("checkpoint_sha256") == hashlib.sha256(note.encode()).hexdigest()
        out.append(AnchorStatus(checkpoint_size=size, ledger=ledger, status=status, created_at=created,
                                anchored_at=anchored, confirmed_at=confirmed, locator=locator,
                                receipt_matches_checkpoint=matches))
    return out


def _open(note: str, root: bytes, verifier: Verifier | None) -> tuple[str | None, Signature, str | None, bool]:
    """(origin, signature state, signature error, root matches) of a stored signed checkpoint."""
    origin = note.split("\n", 1)[0] or None
    try:
        named = Checkpoint.from_text(note[:note.rfind("\n\n") + 1])
    except AnchoringError:
        return origin, "invalid", "the note is not a checkpoint", False
    if verifier is None:
        return origin, "unchecked", None, named.root_hash == root
    try:
        open_checkpoint(note.encode(), verifier, origin=named.origin)
    except AnchoringError as e:
        return origin, "invalid", f"{type(e).__name__}: {e}", named.root_hash == root
    return origin, "verified", None, named.root_hash == root


def list_checkpoints(conn: psycopg.Connection, log_vkey: str | None = None, limit: int = 50) -> list[CheckpointStatus]:
    """The latest `limit` checkpoints, newest first: signature against `log_vkey`, consistency with the
    previous checkpoint (a proof from the stored tree), and their anchors."""
    if not 1 <= limit <= 500:
        raise ValueError("limit must be between 1 and 500")
    verifier = Verifier.from_vkey(log_vkey) if log_vkey else None
    rows = conn.execute("SELECT size, root, note, created_at FROM checkpoints ORDER BY size DESC LIMIT %s",
                        [limit + 1]).fetchall()
    anchors: dict[int, list[AnchorStatus]] = {}
    for a in list_anchors(conn, [r[0] for r in rows[:limit]]):
        anchors.setdefault(a.checkpoint_size, []).append(a)
    out = []
    for (size, root, note, created), previous in itertools.zip_longest(rows[:limit], rows[1:]):
        origin, signature, signature_error, root_ok = _open(note, bytes(root), verifier)
        consistent, consistency_error = None, None
        if previous is not None:
            try:
                if previous[0] > 0:
                    verify_consistency(previous[0], size, consistency_proof(conn, previous[0], size),
                                       bytes(previous[1]), bytes(root))
                consistent = True
            except AnchoringError as e:
                consistent, consistency_error = False, f"{type(e).__name__}: {e}"
        out.append(CheckpointStatus(size=size, root=bytes(root).hex(), origin=origin, created_at=created,
                                    signature=signature, signature_error=signature_error, root_matches_note=root_ok,
                                    previous_size=None if previous is None else previous[0],
                                    consistent_with_previous=consistent, consistency_error=consistency_error,
                                    anchors=anchors.get(size, [])))
    return out


# ---------------------------------------------------------------- MRV periods


def list_periods(conn: psycopg.Connection, project_id: str, utc_offset_minutes: int = 0) -> list[PeriodInfo]:
    """The months (of the project clock) in which the project's devices have envelopes, newest first."""
    if conn.execute("SELECT 1 FROM projects WHERE id = %s", [project_id]).fetchone() is None:
        raise NotFound(f"no project {project_id}")
    rows = conn.execute("SELECT month, envelopes FROM envelope_months(%s, %s) ORDER BY month DESC",
                        [project_id, utc_offset_minutes]).fetchall()
    out = []
    for first, n in rows:
        following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        out.append(PeriodInfo(period=first.strftime("%Y-%m"), first_day=first,
                              last_day=following - dt.timedelta(days=1), envelopes=n))
    return out
