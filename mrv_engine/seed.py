"""Meter data written straight into the database, shaped as ingest stores it: one envelope per device and
interval carrying that interval's readings. For tests, benchmarks and demos that need a populated
database without the MQTT path; the envelopes' bytes are stand-ins, not signed COSE.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg

from mrv_engine.series import I64
from protocol.metrics import Metric
from simulators.faults import MeterUnavailable
from simulators.plant import PlantKind, PlantLike


@dataclass(frozen=True, eq=False)
class DeviceRecording:
    """One device's envelopes in time order: `device_time_ms` also stamps the envelope's readings; each
    metric's values align with the envelopes (NaN: no reading of that metric in that envelope)."""

    device_id: str
    device_time_ms: I64
    received_ms: I64
    values: Mapping[Metric, np.ndarray]
    quality: Mapping[Metric, I64] = field(default_factory=dict)
    capacity_w: int = 1_000_000

    def select(self, mask: np.ndarray) -> DeviceRecording:
        """The envelopes where `mask` is True (e.g. to deliver some late)."""
        return DeviceRecording(self.device_id, self.device_time_ms[mask], self.received_ms[mask],
                               {m: v[mask] for m, v in self.values.items()},
                               {m: q[mask] for m, q in self.quality.items()}, self.capacity_w)


def record(plant: PlantLike, device_id: str, start_ms: int, end_ms: int, *,
           offline: Sequence[tuple[int, int]] = ()) -> DeviceRecording:
    """Read `plant` every `step_s` in [start_ms, end_ms); outages leave no envelope; envelopes read during
    an `offline` span (start, end) arrive when it ends, as an edge agent's outbox delivers them."""
    config = plant.config
    times, device_times, received = [], [], []
    rows: dict[Metric, list[float]] = {m: [] for m in (Metric.ENERGY_EXPORT_WH, Metric.ENERGY_IMPORT_WH,
                                                       Metric.ACTIVE_POWER_W)}
    extra = Metric.IRRADIANCE_W_M2 if config.kind is PlantKind.PV else Metric.WIND_SPEED_M_S
    rows[extra] = []
    for t in range(start_ms, end_ms, config.step_s * 1000):
        try:
            snap = plant.snapshot(t)
        except MeterUnavailable:
            continue
        times.append(t)
        device_times.append(snap.device_time_ms)
        received.append(next((b for a, b in offline if a <= t < b), t))
        rows[Metric.ENERGY_EXPORT_WH].append(snap.export_wh)
        rows[Metric.ENERGY_IMPORT_WH].append(snap.import_wh)
        rows[Metric.ACTIVE_POWER_W].append(round(snap.net_power_w, 3))
        sensor = snap.irradiance_w_m2 if extra is Metric.IRRADIANCE_W_M2 else snap.wind_speed_m_s
        rows[extra].append(np.nan if sensor is None else round(sensor, 3))
    return DeviceRecording(device_id, np.array(device_times, np.int64), np.array(received, np.int64),
                           {m: np.array(v, np.int64 if m in _REGISTERS else np.float64) for m, v in rows.items()},
                           capacity_w=round(config.capacity_w))


_REGISTERS = (Metric.ENERGY_EXPORT_WH, Metric.ENERGY_IMPORT_WH)


def _iso(ms: I64) -> np.ndarray:
    return np.char.add(np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms"), "+00")


def _bytea(hex_digests: np.ndarray) -> np.ndarray:
    return np.char.add("\\\\x", hex_digests.astype(str))  # COPY text: the backslash itself escaped


def _tsv(columns: Iterable[np.ndarray]) -> bytes:
    text = [np.asarray(c).astype(str) for c in columns]
    lines = text[0]
    for column in text[1:]:
        lines = np.char.add(np.char.add(lines, "\t"), column)
    return ("\n".join(lines.tolist()) + "\n").encode() if lines.size else b""


def write(conn: psycopg.Connection, project_id: str, recordings: Sequence[DeviceRecording]) -> int:
    """Insert the project, its devices and keys, and every envelope and reading (COPY); commits; returns
    the number of readings."""
    total = 0
    with conn.transaction():
        conn.execute("INSERT INTO projects (id) VALUES (%s) ON CONFLICT DO NOTHING", [project_id])
        first = conn.execute("SELECT COALESCE(max(id), 0) + 1 FROM envelopes").fetchone()
        next_id = int(first[0]) if first else 1
        for rec in recordings:
            did = rec.device_id
            kid = hashlib.sha256(b"kid:" + did.encode()).digest()[:16]
            conn.execute("INSERT INTO devices (id, project_id, role, kind, capacity_w) "
                         "VALUES (%s, %s, 'main', 'pv', %s) ON CONFLICT DO NOTHING", [did, project_id, rec.capacity_w])
            conn.execute("INSERT INTO device_keys (kid, device_id, public_key, valid_from) "
                         "VALUES (%s, %s, %s, '2000-01-01') ON CONFLICT DO NOTHING",
                         [kid, did, hashlib.sha256(kid).digest()])
            row = conn.execute("SELECT COALESCE(max(seq) + 1, 0) FROM envelopes WHERE device_id = %s", [did])
            seq0 = int(next(iter(row.fetchone() or (0,))))
            n = rec.device_time_ms.size
            ids = next_id + np.arange(n, dtype=np.int64)
            next_id += n
            hashes = np.array([hashlib.sha256(f"{did}:{seq}".encode()).hexdigest()
                               for seq in range(seq0, seq0 + n)])
            prev = np.concatenate(([bytes(32).hex()], hashes[:-1])) if n else hashes
            stamps = _iso(rec.device_time_ms)
            with conn.cursor().copy("COPY envelopes (id, device_id, seq, hash, prev, kid, device_time, "
                                    "received_at, raw) FROM STDIN") as copy:
                copy.write(_tsv([ids, np.full(n, did), seq0 + np.arange(n), _bytea(hashes), _bytea(prev),
                                 np.full(n, "\\\\x" + kid.hex()), stamps, _iso(rec.received_ms), _bytea(hashes)]))
            for metric, values in rec.values.items():
                present = ~np.isnan(values) if values.dtype.kind == "f" else np.ones(n, bool)
                quality = rec.quality.get(metric, np.zeros(n, np.int64))
                body = _tsv([np.full(int(present.sum()), did), np.full(int(present.sum()), int(metric)),
                             stamps[present], values[present], quality[present], ids[present]])
                with conn.cursor().copy("COPY readings (device_id, metric, ts, value, quality, envelope_id) "
                                        "FROM STDIN") as copy:
                    copy.write(body)
                total += int(present.sum())
        conn.execute("SELECT setval(pg_get_serial_sequence('envelopes', 'id'), %s)", [next_id - 1])
    return total
