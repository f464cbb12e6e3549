"""The console's JSON API under /api/v1: reads for every role, report regeneration for operators, device
enrollment and revocation, users and tokens for admins. Every input is validated (pydantic, bounded);
errors are JSON `{"detail": "..."}`: 400 bad input the schema cannot express (a period, a time range),
401 no or bad credentials, 403 wrong role, 404 unknown id, 409 conflicts (already enrolled, a project whose
configuration or data allow no report); 422 is FastAPI's validation error (`detail` a list).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from ingest.broker_auth import write_broker_files
from ingest.errors import EnrollmentRefused, UnknownDevice
from ingest.registry import MeterRole, PlantKind, broker_accounts, enroll_device, revoke_keys
from mrv_engine.console import queries, reports, users
from mrv_engine.console.auth import Admin, Operator, Reader
from mrv_engine.console.config import ConsoleConfig
from mrv_engine.console.deps import get_config, get_conn
from mrv_engine.console.queries import MetricName
from protocol.keys import PublicKeyRecord

router = APIRouter(prefix="/api/v1")

Conn = Annotated[psycopg.Connection, Depends(get_conn)]
Config = Annotated[ConsoleConfig, Depends(get_config)]
_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # protocol.ids
ProjectId = Annotated[str, Path(pattern=_ID, description="project id")]
DeviceId = Annotated[str, Path(pattern=_ID, description="device id")]
Period = Annotated[str, Path(max_length=32, description="YYYY-MM, YYYY-MM..YYYY-MM or YYYY-MM-DD..YYYY-MM-DD",
                             examples=["2026-11", "2026-11-01..2026-11-08"])]


_DEFAULT_METRIC = MetricName("active_power_w")


class Message(BaseModel):
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Message, "description": "bad input: a malformed body, period, time range or key"},
    401: {"model": Message, "description": "no, invalid, revoked or expired credentials"},
    403: {"model": Message, "description": "the role may not do this"},
    404: {"model": Message, "description": "unknown id"}}


def _not_found(e: Exception) -> HTTPException:
    return HTTPException(404, str(e).strip("'\""))


def _bad_input(e: ValueError) -> HTTPException:
    return HTTPException(400, str(e))


class Me(BaseModel):
    name: str
    role: users.Role


@router.get("/me", response_model=Me, responses=_ERRORS, tags=["accounts"])
def me(principal: Reader) -> Me:
    """Who the credentials belong to."""
    return Me(name=principal.name, role=principal.role)


# ---------------------------------------------------------------- projects, devices, readings


@router.get("/projects", response_model=list[queries.Project], responses=_ERRORS, tags=["projects"])
def projects(_: Reader, conn: Conn, config: Config) -> list[queries.Project]:
    return queries.list_projects(conn, config.projects_dir)


@router.get("/projects/{project_id}", response_model=queries.ProjectDetail, responses=_ERRORS, tags=["projects"])
def project(project_id: ProjectId, _: Reader, conn: Conn, config: Config) -> queries.ProjectDetail:
    try:
        return queries.get_project(conn, project_id, config.projects_dir, config.online_within_s)
    except queries.NotFound as e:
        raise _not_found(e) from None


@router.get("/devices", response_model=list[queries.DeviceStatus], responses=_ERRORS, tags=["devices"])
def devices(_: Reader, conn: Conn, config: Config,
            project: Annotated[str | None, Query(pattern=_ID)] = None) -> list[queries.DeviceStatus]:
    return queries.list_devices(conn, project, online_within_s=config.online_within_s)


@router.get("/devices/{device_id}", response_model=queries.DeviceDetail, responses=_ERRORS, tags=["devices"])
def device(device_id: DeviceId, _: Reader, conn: Conn, config: Config) -> queries.DeviceDetail:
    try:
        return queries.get_device(conn, device_id, online_within_s=config.online_within_s)
    except queries.NotFound as e:
        raise _not_found(e) from None


@router.get("/devices/{device_id}/readings", response_model=queries.ReadingSeries,
            responses=_ERRORS,
            tags=["devices"])
def readings(device_id: DeviceId, _: Reader, conn: Conn,
             metric: Annotated[MetricName, Query(description="metric name")] = _DEFAULT_METRIC,
             start: Annotated[dt.datetime | None, Query(description="ISO 8601 with offset; default end - 24 h")] = None,
             end: Annotated[dt.datetime | None, Query(description="ISO 8601 with offset; default just after the "
                                                                  "latest reading")] = None,
             points: Annotated[int, Query(ge=1, le=5000)] = 500) -> queries.ReadingSeries:
    """Readings of one metric in [start, end), averaged into at most `points` buckets (avg/min/max each)."""
    for moment in (start, end):
        if moment is not None and (moment.tzinfo is None or not dt.datetime.min.year < moment.year < 9999):
            raise HTTPException(400, "start and end are ISO 8601 times with a UTC offset, years 2..9998")
    try:
        return queries.device_readings(conn, device_id, metric.value, start, end, points)
    except queries.NotFound as e:
        raise _not_found(e) from None
    except ValueError as e:
        raise _bad_input(e) from None


@router.get("/fleet", response_model=queries.FleetSummary, responses=_ERRORS, tags=["devices"])
def fleet(_: Reader, conn: Conn, config: Config) -> queries.FleetSummary:
    return queries.fleet_summary(conn, config.online_within_s)


# ---------------------------------------------------------------- quarantine


@router.get("/quarantine", response_model=queries.QuarantinePage, responses=_ERRORS, tags=["quarantine"])
def quarantine(_: Reader, conn: Conn,
               reason: Annotated[str | None, Query(max_length=64)] = None,
               device: Annotated[str | None, Query(max_length=64)] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50,
               before: Annotated[int | None, Query(ge=1, le=2**63 - 1,
                                                   description="next_before of the previous page")] = None
               ) -> queries.QuarantinePage:
    """Refused input, newest first (keyset pagination)."""
    return queries.list_quarantine(conn, reason, device, limit, before)


@router.get("/quarantine/counts", response_model=queries.QuarantineCounts, responses=_ERRORS, tags=["quarantine"])
def quarantine_counts(_: Reader, conn: Conn) -> queries.QuarantineCounts:
    return queries.quarantine_counts(conn)


# ---------------------------------------------------------------- log


@router.get("/checkpoints", response_model=list[queries.CheckpointStatus], responses=_ERRORS, tags=["log"])
def checkpoints(_: Reader, conn: Conn, config: Config,
                limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[queries.CheckpointStatus]:
    """The latest checkpoints with their verification: signature, consistency, anchors."""
    return queries.list_checkpoints(conn, config.log_vkey, limit)


@router.get("/anchors", response_model=list[queries.AnchorStatus], responses=_ERRORS, tags=["log"])
def anchors(_: Reader, conn: Conn) -> list[queries.AnchorStatus]:
    return queries.list_anchors(conn)


# ---------------------------------------------------------------- MRV


@router.get("/projects/{project_id}/periods", response_model=list[queries.PeriodInfo], responses=_ERRORS,
            tags=["reports"])
def periods(project_id: ProjectId, _: Reader, conn: Conn, config: Config) -> list[queries.PeriodInfo]:
    """Months with data (of the project's clock when it has a configuration)."""
    offset = 0  # without a usable configuration: UTC months
    with contextlib.suppress(queries.NotFound, reports.ReportError):
        offset = reports.load_project(config, project_id)[0].utc_offset_minutes
    try:
        return queries.list_periods(conn, project_id, offset)
    except queries.NotFound as e:
        raise _not_found(e) from None


def _report(conn: psycopg.Connection, config: ConsoleConfig, project_id: str, period: str,
            regenerate: bool) -> reports.ReportResponse:
    try:
        return reports.period_report(conn, config, project_id, period, regenerate=regenerate)
    except queries.NotFound as e:
        raise _not_found(e) from None
    except reports.ReportError as e:
        raise HTTPException(409, str(e)) from None
    except ValueError as e:  # the period
        raise _bad_input(e) from None


_REPORT_ERRORS = _ERRORS | {409: {"model": Message, "description": "the report cannot be made (configuration, data)"}}


@router.get("/projects/{project_id}/reports/{period}", response_model=reports.ReportResponse,
            responses=_REPORT_ERRORS, tags=["reports"])
def report(project_id: ProjectId, period: Period, _: Reader, conn: Conn, config: Config) -> reports.ReportResponse:
    """The monitoring report (generated on first request for the current data, then cached)."""
    return _report(conn, config, project_id, period, regenerate=False)


@router.post("/projects/{project_id}/reports/{period}", response_model=reports.ReportResponse,
             responses=_REPORT_ERRORS, tags=["reports"])
def regenerate_report(project_id: ProjectId, period: Period, _: Operator, conn: Conn,
                      config: Config) -> reports.ReportResponse:
    """Generate the report again, replacing the cached one."""
    return _report(conn, config, project_id, period, regenerate=True)


@router.get("/projects/{project_id}/reports/{period}/evidence", response_class=FileResponse,
            responses=_REPORT_ERRORS | {200: {"content": {"application/json": {}},
                                              "description": "the evidence bundle (for `mrv verify`)"}},
            tags=["reports"])
def evidence(project_id: ProjectId, period: Period, _: Reader, conn: Conn, config: Config) -> FileResponse:
    """The report's evidence bundle as a download; check it offline with `mrv verify FILE`."""
    try:
        canonical = reports.parse_period(period)[0]
        path = reports.evidence_bundle(conn, config, project_id, period)
    except queries.NotFound as e:
        raise _not_found(e) from None
    except reports.ReportError as e:
        raise HTTPException(409, str(e)) from None
    except ValueError as e:
        raise _bad_input(e) from None
    return FileResponse(path, media_type="application/json",
                        filename=f"{project_id}_{canonical.replace('..', '_')}.bundle.json")


# ---------------------------------------------------------------- device registry (admin)


class PublicKeyIn(BaseModel):
    """The record `mrv edge keygen --public-out` writes."""
    model_config = ConfigDict(extra="forbid")
    device_id: str = Field(pattern=_ID)
    algorithm: Literal["Ed25519"] = "Ed25519"
    kid: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    public_key: str = Field(max_length=64, description="base64 of the 32-byte Ed25519 public key")


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project_id: str = Field(pattern=_ID)
    role: MeterRole = MeterRole.MAIN
    kind: PlantKind
    capacity_w: int = Field(gt=0, le=10**13)
    public_key: PublicKeyIn


class Enrolled(BaseModel):
    device_id: str
    project_id: str
    kid: str
    broker_password: str = Field(description="the device's MQTT password: shown once, store it on the gateway")


class Revoked(BaseModel):
    device_id: str
    revoked: list[str] = Field(description="kids revoked, hex")


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kid: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$", description="one key; null: every key")


def _update_broker_files(conn: psycopg.Connection, config: ConsoleConfig) -> None:
    if config.broker_dir is not None:
        write_broker_files(broker_accounts(conn), config.broker_dir)


def _public_key(body: PublicKeyIn) -> PublicKeyRecord:
    try:
        record = PublicKeyRecord(body.device_id, base64.b64decode(body.public_key, validate=True))
    except ValueError as e:
        raise HTTPException(400, f"not a device public-key record: {e}") from None
    if body.kid is not None and body.kid != record.kid.hex():
        raise HTTPException(400, "the record's kid does not match its public key")
    return record


@router.post("/devices", response_model=Enrolled, status_code=201, tags=["devices"],
             responses=_ERRORS | {409: {"model": Message, "description": "already enrolled"}})
def enroll(body: EnrollRequest, _: Admin, conn: Conn, config: Config) -> Enrolled:
    """Enroll a device with its public-key record; the broker password comes back once."""
    record = _public_key(body.public_key)
    try:
        password = enroll_device(conn, record, project_id=body.project_id, role=body.role, kind=body.kind,
                                 capacity_w=body.capacity_w)
    except EnrollmentRefused as e:
        raise HTTPException(409, str(e)) from None
    _update_broker_files(conn, config)
    return Enrolled(device_id=record.device_id, project_id=body.project_id, kid=record.kid.hex(),
                    broker_password=password)


@router.post("/devices/{device_id}/revoke", response_model=Revoked, responses=_ERRORS, tags=["devices"])
def revoke(device_id: DeviceId, _: Admin, conn: Conn, config: Config, body: RevokeRequest | None = None) -> Revoked:
    """Revoke one key of the device, or all: nothing it signs is accepted any more."""
    kid = bytes.fromhex(body.kid) if body is not None and body.kid else None
    try:
        revoked = revoke_keys(conn, device_id, kid)
    except UnknownDevice as e:
        raise _not_found(e) from None
    _update_broker_files(conn, config)
    return Revoked(device_id=device_id, revoked=[k.hex() for k in revoked])


# ---------------------------------------------------------------- users and tokens (admin)


UserName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
    role: users.Role
    password: str | None = Field(default=None, min_length=8, max_length=1024,
                                 description="omit to have one generated (returned once)")


class CreatedUser(BaseModel):
    name: str
    role: users.Role
    password: str | None = Field(description="the generated password, shown once; null if one was given")


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
    label: str = Field(default="", max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class CreatedToken(BaseModel):
    id: int
    user: str
    token: str = Field(description="the API token, shown once (only its hash is stored)")


_ACCOUNT_ERRORS = _ERRORS | {409: {"model": Message, "description": "refused (exists already, ...)"}}


@router.get("/users", response_model=list[users.UserInfo], responses=_ERRORS, tags=["accounts"])
def list_users(_: Admin, conn: Conn) -> list[users.UserInfo]:
    return users.list_users(conn)


@router.post("/users", response_model=CreatedUser, status_code=201, responses=_ACCOUNT_ERRORS, tags=["accounts"])
def add_user(body: NewUser, _: Admin, conn: Conn) -> CreatedUser:
    password = body.password or users.new_password()
    try:
        users.add_user(conn, body.name, body.role, password)
    except users.AccountError as e:
        raise HTTPException(409, str(e)) from None
    return CreatedUser(name=body.name, role=body.role, password=None if body.password else password)


@router.delete("/users/{name}", status_code=204, responses=_ACCOUNT_ERRORS, tags=["accounts"])
def delete_user(name: UserName, principal: Admin, conn: Conn) -> None:
    """Remove a user with their tokens and sessions (not yourself)."""
    if name == principal.name:
        raise HTTPException(409, "you cannot remove yourself")
    try:
        users.delete_user(conn, name)
    except users.AccountError as e:
        raise _not_found(e) from None


@router.get("/tokens", response_model=list[users.TokenInfo], responses=_ERRORS, tags=["accounts"])
def list_tokens(_: Admin, conn: Conn,
                user: Annotated[str | None, Query(max_length=64)] = None) -> list[users.TokenInfo]:
    return users.list_tokens(conn, user)


@router.post("/tokens", response_model=CreatedToken, status_code=201, responses=_ACCOUNT_ERRORS, tags=["accounts"])
def create_token(body: NewToken, _: Admin, conn: Conn) -> CreatedToken:
    expires = None if body.expires_in_days is None else dt.timedelta(days=body.expires_in_days)
    try:
        token_id, token = users.create_token(conn, body.user, body.label, expires)
    except users.AccountError as e:
        raise _not_found(e) from None
    return CreatedToken(id=token_id, user=body.user, token=token)


@router.post("/tokens/{token_id}/revoke", status_code=204, responses=_ERRORS, tags=["accounts"])
def revoke_token(token_id: Annotated[int, Path(ge=1, le=2**63 - 1)], _: Admin, conn: Conn) -> None:
    try:
        users.revoke_token(conn, token_id)
    except users.AccountError as e:
        raise _not_found(e) from None
