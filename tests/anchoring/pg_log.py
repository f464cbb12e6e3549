"""Signed envelopes written straight into the `envelopes` table, as ingest stores them."""

from __future__ import annotations

import datetime as dt

import psycopg

from protocol import envelope_hash
from tests.ingest.helpers import T0, Device, enroll


def new_device(conninfo: str, device_id: str = "meter-1", project_id: str = "plant-1") -> Device:
    device = Device(device_id, project_id)
    enroll(conninfo, [device])
    return device


def insert_envelopes(conn: psycopg.Connection, device: Device, count: int) -> list[int]:
    """Sign the device's next `count` envelopes and insert them in the caller's transaction."""
    ids = []
    for _ in range(count):
        time_ms = T0 + device.seq * 60_000
        prev = device.prev
        raw = device.next(time_ms, n=2)
        row = conn.execute(
            "INSERT INTO envelopes (device_id, seq, hash, prev, kid, device_time, received_at, raw) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [device.device_id, device.seq - 1, envelope_hash(raw), prev, device.signer.kid,
             dt.datetime.fromtimestamp(time_ms / 1000, dt.UTC), dt.datetime.now(dt.UTC), raw],
        ).fetchone()
        assert row is not None
        ids.append(int(row[0]))
    return ids
