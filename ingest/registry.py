"""The device registry in PostgreSQL: enroll, rotate, revoke, list, and the views other parts read
(the ingest worker's `RegistryView`, the broker accounts). Every function takes an autocommit
connection and runs one transaction.

Enrollment takes the PublicKeyRecord a gateway exports (`mrv edge keygen`); the key never leaves the
gateway. A device gets a generated broker password, returned once for the operator to hand over.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import psycopg

from ingest.broker_auth import BrokerAccount, hash_password, new_password
from ingest.decide import KeyInfo, KeyStatus, RegistryView
from ingest.errors import EnrollmentRefused, UnknownDevice
from protocol.ids import check_id
from protocol.keys import PublicKeyRecord


class MeterRole(enum.StrEnum):
    MAIN = "main"  # the revenue meter whose energy is credited
    CHECK = "check"  # a second meter for plausibility (ACM0002 allows a check meter)


class PlantKind(enum.StrEnum):
    PV = "pv"
    WIND = "wind"
    HYDRO = "hydro"
    OTHER = "other"


@dataclass(frozen=True)
class KeyRecord:
    kid: bytes
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    status: KeyStatus
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    project_id: str
    role: MeterRole
    kind: PlantKind
    capacity_w: int
    enrolled_at: dt.datetime
    keys: tuple[KeyRecord, ...]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _to_ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def validate_key(record: PublicKeyRecord) -> None:
    """Refuse keys that are not a point of the Ed25519 main subgroup (identity, small order, junk):
    a signature could verify under such a key without anyone holding its private half."""
    try:
        nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(record.public_key)
    except nacl.exceptions.CryptoError as e:
        raise EnrollmentRefused(f"the public key of {record.device_id} is not a valid Ed25519 key") from e


def _insert_key(conn: psycopg.Connection, record: PublicKeyRecord, valid_from: dt.datetime) -> None:
    validate_key(record)
    taken = conn.execute("SELECT device_id FROM device_keys WHERE kid = %s OR public_key = %s",
                         [record.kid, record.public_key]).fetchone()
    if taken is not None:
        raise EnrollmentRefused(f"key {record.kid.hex()} is already enrolled (device {taken[0]})")
    conn.execute("INSERT INTO device_keys (kid, device_id, public_key, valid_from) VALUES (%s, %s, %s, %s)",
                 [record.kid, record.device_id, record.public_key, valid_from])


def enroll_device(conn: psycopg.Connection, record: PublicKeyRecord, *, project_id: str, role: MeterRole,
                  kind: PlantKind, capacity_w: int, valid_from: dt.datetime | None = None) -> str:
    """Register a device with its first key; returns its new broker password (shown once)."""
    check_id(project_id, "project id")
    if capacity_w <= 0:
        raise EnrollmentRefused(f"capacity must be positive, not {capacity_w} W")
    password = new_password()
    with conn.transaction():
        if conn.execute("SELECT 1 FROM devices WHERE id = %s", [record.device_id]).fetchone():
            raise EnrollmentRefused(f"device {record.device_id} is already enrolled; "
                                    "use rotate for a new key")
        if conn.execute("SELECT 1 FROM broker_accounts WHERE username = %s", [record.device_id]).fetchone():
            raise EnrollmentRefused(f"{record.device_id} is the name of a broker service account")
        conn.execute("INSERT INTO projects (id) VALUES (%s) ON CONFLICT DO NOTHING", [project_id])
        conn.execute("INSERT INTO devices (id, project_id, role, kind, capacity_w) "
                     "VALUES (%s, %s, %s, %s, %s)",
                     [record.device_id, project_id, role.value, kind.value, capacity_w])
        _insert_key(conn, record, valid_from or _now())
        conn.execute("INSERT INTO broker_accounts (username, password_hash, role, device_id) "
                     "VALUES (%s, %s, 'device', %s)",
                     [record.device_id, hash_password(password), record.device_id])
    return password


def rotate_key(conn: psycopg.Connection, record: PublicKeyRecord, *, grace: dt.timedelta = dt.timedelta(0),
               now: dt.datetime | None = None) -> list[bytes]:
    """Add the device's new key, valid from now; the active old keys stay valid for `grace` more
    (envelopes must be signed AND arrive inside a key's window). Returns the kids closed."""
    now = now or _now()
    with conn.transaction():
        device = conn.execute("SELECT 1 FROM devices WHERE id = %s FOR UPDATE", [record.device_id]).fetchone()
        if device is None:
            raise UnknownDevice(f"device {record.device_id} is not enrolled")
        closed = conn.execute(
            "UPDATE device_keys SET valid_until = %s WHERE device_id = %s AND status = 'active' "
            "AND (valid_until IS NULL OR valid_until > %s) RETURNING kid",
            [now + grace, record.device_id, now + grace]).fetchall()
        _insert_key(conn, record, now)
    return [kid for (kid,) in closed]


def revoke_keys(conn: psycopg.Connection, device_id: str, kid: bytes | None = None) -> list[bytes]:
    """Revoke one key of the device, or all of them: nothing signed by a revoked key is accepted any
    more, whatever its time. Returns the kids revoked."""
    with conn.transaction():
        rows = conn.execute(
            "UPDATE device_keys SET status = 'revoked', revoked_at = now() "
            "WHERE device_id = %s AND status = 'active' AND (%s::bytea IS NULL OR kid = %s) RETURNING kid",
            [device_id, kid, kid]).fetchall()
        if not rows:
            what = f"key {kid.hex()}" if kid else "key"
            raise UnknownDevice(f"device {device_id} has no active {what}")
    return [k for (k,) in rows]


def list_devices(conn: psycopg.Connection, project_id: str | None = None) -> list[DeviceRecord]:
    keys: dict[str, list[KeyRecord]] = {}
    for device_id, kid, valid_from, valid_until, status, revoked_at in conn.execute(
            "SELECT device_id, kid, valid_from, valid_until, status, revoked_at FROM device_keys "
            "ORDER BY device_id, valid_from"):
        key = KeyRecord(kid, valid_from, valid_until, KeyStatus(status), revoked_at)
        keys.setdefault(device_id, []).append(key)
    rows = conn.execute("SELECT id, project_id, role, kind, capacity_w, enrolled_at FROM devices "
                        "WHERE %s::text IS NULL OR project_id = %s ORDER BY project_id, id",
                        [project_id, project_id]).fetchall()
    return [DeviceRecord(d, p, MeterRole(r), PlantKind(k), c, e, tuple(keys.get(d, ())))
            for d, p, r, k, c, e in rows]


def registry_version(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT version FROM registry_version").fetchone()
    if row is None:
        raise RuntimeError("registry_version has no row: run `mrv db migrate`")
    return int(row[0])


def load_registry_view(conn: psycopg.Connection) -> RegistryView:
    """A consistent snapshot (one REPEATABLE READ transaction) of devices and keys for `screen`."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        version = registry_version(conn)
        projects: dict[str, str] = dict(conn.execute("SELECT id, project_id FROM devices").fetchall())
        keys = {kid: KeyInfo(kid, device_id, public_key, _to_ms(valid_from),
                             None if valid_until is None else _to_ms(valid_until), KeyStatus(status))
                for kid, device_id, public_key, valid_from, valid_until, status in conn.execute(
                    "SELECT kid, device_id, public_key, valid_from, valid_until, status FROM device_keys")}
    return RegistryView(version, projects, keys)


def set_ingest_account(conn: psycopg.Connection, username: str = "ingest") -> str:
    """Create (or reset the password of) the ingest service's broker account; returns the password."""
    check_id(username, "broker user name")
    password = new_password()
    with conn.transaction():
        if conn.execute("SELECT 1 FROM devices WHERE id = %s", [username]).fetchone():
            raise EnrollmentRefused(f"{username} is a device id; choose another name for the ingest account")
        conn.execute("INSERT INTO broker_accounts (username, password_hash, role) VALUES (%s, %s, 'ingest') "
                     "ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash "
                     "WHERE broker_accounts.role = 'ingest'", [username, hash_password(password)])
    return password


def broker_accounts(conn: psycopg.Connection) -> list[BrokerAccount]:
    """Every broker login; a device account is enabled while the device has an active key."""
    rows = conn.execute(
        "SELECT a.username, a.password_hash, a.role, a.device_id, d.project_id, "
        "       a.role = 'ingest' OR EXISTS (SELECT 1 FROM device_keys k "
        "                                    WHERE k.device_id = a.device_id AND k.status = 'active') "
        "FROM broker_accounts a LEFT JOIN devices d ON d.id = a.device_id ORDER BY a.username").fetchall()
    return [BrokerAccount(u, h, r, d, p, bool(e)) for u, h, r, d, p, e in rows]
