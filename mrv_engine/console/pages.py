"""The console's pages, rendered on the server (Jinja2, autoescaped): fleet health, a device, a project's
periods, a period's report, checkpoints and anchors, the quarantine browser, and device enrollment and
revocation for admins.

Charts are drawn in the browser by the vendored uPlot from JSON embedded in the page: no build step and no
request after the page. A page asked for without a session redirects to /login?next=<path>; a non-admin
asking for /admin/* gets a 403 page. Forms post with the session cookie; the backend's same-origin rule
(auth.py) is their CSRF protection. Every read goes through `queries`/`reports`, the same functions the
JSON API serves; enrollment and revocation call the API's own handlers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import psycopg
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from ingest.registry import MeterRole, PlantKind
from mrv_engine.console import api, queries, reports
from mrv_engine.console.auth import Principal, Role, page_principal, safe_next
from mrv_engine.console.config import ConsoleConfig
from mrv_engine.console.deps import get_config, get_conn
from mrv_engine.report import period_fields, total_fields
from protocol.metrics import METRICS_BY_NAME

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")  # autoescapes .html
templates.env.filters["utc_ms"] = lambda ms: f"{dt.datetime.fromtimestamp(ms / 1000, dt.UTC):%Y-%m-%d %H:%M}"
READING_POINTS = 400  # buckets per device chart: finer than a laptop screen needs
CHARTED_METRICS = 4  # a device page charts at most this many of its metrics
QUARANTINE_PAGE = 50


class LoginRequired(Exception):
    """No (valid) session: the page redirects to the login form."""


class _PageRoute(APIRoute):
    """Turns a refusal anywhere in a page's handling into a page: the login redirect, or an error page
    (HTTPException, a bad query parameter), instead of the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handle(request)
            except LoginRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
            except HTTPException as e:
                return error_page(request, e.status_code, str(e.detail))
            except RequestValidationError as e:
                problems = "; ".join(f"{'.'.join(map(str, err['loc'][1:]))}: {err['msg']}" for err in e.errors())
                return error_page(request, 400, problems)

        return page


router = APIRouter(route_class=_PageRoute, include_in_schema=False)


def viewer(request: Request) -> Principal:
    principal = page_principal(request)
    if principal is None:
        raise LoginRequired
    request.state.principal = principal
    return principal


def admin(principal: Annotated[Principal, Depends(viewer)]) -> Principal:
    if principal.role is not Role.ADMIN:
        raise HTTPException(403, f"this page is for admins; you are signed in as {principal.name} "
                                 f"({principal.role.value})")
    return principal


Viewer = Annotated[Principal, Depends(viewer)]
Admin = Annotated[Principal, Depends(admin)]
Conn = Annotated[psycopg.Connection, Depends(get_conn)]
Config = Annotated[ConsoleConfig, Depends(get_config)]

_ERROR_HEADINGS = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Cannot be shown"}


def render(request: Request, template: str, nav: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    return templates.TemplateResponse(request, template, {"principal": principal, "nav": nav, **context},
                                      status_code=status_code)


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    return render(request, "error.html", "", status_code, code=status_code, message=message,
                  heading=_ERROR_HEADINGS.get(status_code, "Error"))


def not_found(e: LookupError) -> HTTPException:
    return HTTPException(404, str(e).strip("'\""))


def _epoch(moment: dt.datetime) -> float:
    return moment.timestamp()


# ---------------------------------------------------------------- login


@router.get("/login")
def login_form(request: Request, next: str | None = None, error: str | None = None,
               minutes: Annotated[int | None, Query(ge=1, le=24 * 60)] = None) -> HTMLResponse:
    return render(request, "login.html", "/login", next=safe_next(next), error=error is not None,
                  locked_minutes=minutes if error == "locked" else None)


# ---------------------------------------------------------------- fleet and devices


@router.get("/")
def fleet(request: Request, _: Viewer, conn: Conn, config: Config) -> HTMLResponse:
    summary = queries.fleet_summary(conn, config.online_within_s)
    hourly = {"kind": "line", "time": True, "x": [_epoch(h.hour) for h in summary.envelopes_per_hour],
             "series": [{"label": "envelopes", "values": [h.envelopes for h in summary.envelopes_per_hour]}]}
    return render(request, "fleet.html", "/", summary=summary, hourly=hourly,
                  devices=queries.list_devices(conn, online_within_s=config.online_within_s, count_readings=False),
                  projects=queries.list_projects(conn, config.projects_dir))


def _reading_chart(series: queries.ReadingSeries) -> dict[str, Any]:
    return {"kind": "line", "time": True, "x": [_epoch(b.start) for b in series.buckets],
            "series": [{"label": f"{name} ({series.unit})", "values": [getattr(b, name) for b in series.buckets]}
                       for name in ("avg", "min", "max")]}


@router.get("/devices/{device_id}")
def device(request: Request, device_id: str, _: Viewer, conn: Conn, config: Config) -> HTMLResponse:
    try:
        detail = queries.get_device(conn, device_id, online_within_s=config.online_within_s)
    except queries.NotFound as e:
        raise not_found(e) from None
    charted = [m.metric for m in detail.metrics if m.metric in METRICS_BY_NAME][:CHARTED_METRICS]
    charts = [(metric, _reading_chart(queries.device_readings(conn, device_id, metric, points=READING_POINTS)))
              for metric in charted]
    return render(request, "device.html", "/", device=detail, charts=charts)


# ---------------------------------------------------------------- projects and reports


def complete_days(conn: psycopg.Connection, project_id: str, utc_offset_minutes: int
                  ) -> tuple[dt.date, dt.date] | None:
    """The project's days with data, of its clock: from the day of its first envelope to the last day
    that data has gone past (a day in progress would be reported as mostly uncovered). None before one
    whole day. Reads each device's first and last envelope through the (device_id, seq) index."""
    row = conn.execute(
        "SELECT min(f.device_time), max(l.device_time) FROM devices d "
        "JOIN LATERAL (SELECT device_time FROM envelopes WHERE device_id = d.id ORDER BY seq LIMIT 1) f ON true "
        "JOIN LATERAL (SELECT device_time FROM envelopes WHERE device_id = d.id ORDER BY seq DESC LIMIT 1) l ON true "
        "WHERE d.project_id = %s", [project_id]).fetchone()
    if row is None or row[0] is None:
        return None
    offset = dt.timedelta(minutes=utc_offset_minutes)
    first, last = (row[0] + offset).date(), (row[1] + offset).date() - dt.timedelta(days=1)
    first = max(first, last - dt.timedelta(days=reports.MAX_DAYS - 1))
    return (first, last) if first <= last else None


def _project_report(conn: psycopg.Connection, config: ConsoleConfig, project_id: str
                    ) -> tuple[dict[str, Any] | None, str | None]:
    """The report over the project's complete days with data, one period per month (the engine run once,
    then cached): (document, None), or (None, why there is none)."""
    try:
        project, _ = reports.load_project(config, project_id)
        days = complete_days(conn, project_id, project.utc_offset_minutes)
        if days is None:
            return None, "no whole day of data yet"
        return reports.period_report(conn, config, project_id, f"{days[0]}..{days[1]}").report, None
    except (queries.NotFound, reports.ReportError) as e:
        return None, str(e)


def _per_period_chart(doc: dict[str, Any], field: str, label: str, scale: float = 1.0) -> dict[str, Any]:
    return {"kind": "bars", "time": False, "x": list(range(len(doc["periods"]))),
            "labels": [p["first_day"][:7] for p in doc["periods"]],
            "series": [{"label": label, "values": [float(period_fields(p)[field]) * scale for p in doc["periods"]]}]}


def _month_ended(first_day: str) -> bool:
    first = dt.date.fromisoformat(first_day)
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    # a day of slack covers project clocks ahead of UTC; the API gives the exact answer
    return following < dt.datetime.now(dt.UTC).date()


@router.get("/projects/{project_id}")
def project(request: Request, project_id: str, _: Viewer, conn: Conn, config: Config) -> HTMLResponse:
    try:
        detail = queries.get_project(conn, project_id, config.projects_dir, config.online_within_s)
    except queries.NotFound as e:
        raise not_found(e) from None
    doc, why_not = _project_report(conn, config, project_id) if detail.has_config else (
        None, f"no configuration file {project_id}.toml in the console's projects directory")
    rows = [] if doc is None else [
        {"period": f'{p["first_day"]}..{p["last_day"]}', "fields": period_fields(p), "flags": p["result"]["flags"],
         # the whole month only once it has ended: a report over time to come is refused
         "month": p["first_day"][:7] if _month_ended(p["first_day"]) else None} for p in doc["periods"]]
    charts = [] if doc is None else [
        ("generation", "Net generation per period (MWh)", _per_period_chart(doc, "net_generation_wh", "MWh", 1e-6)),
        ("reductions", "Emission reductions per period (tCO2e)",
         _per_period_chart(doc, "reductions_tco2e", "tCO2e"))]
    periods = [] if doc is not None else queries.list_periods(conn, project_id)
    return render(request, "project.html", "/", project=detail, periods=periods, rows=rows, charts=charts,
                  totals=None if doc is None else total_fields(doc), why_not=why_not)


@router.get("/projects/{project_id}/reports/{period}")
def report(request: Request, project_id: str, period: str, _: Viewer, conn: Conn, config: Config) -> HTMLResponse:
    try:
        found = reports.period_report(conn, config, project_id, period)
    except queries.NotFound as e:
        raise not_found(e) from None
    except reports.ReportError as e:
        raise HTTPException(409, str(e)) from None
    except ValueError as e:  # the period, or an id that cannot be one
        raise HTTPException(400, str(e)) from None
    doc = found.report
    checkpoint = doc.get("checkpoint")
    anchors = [] if not checkpoint else queries.list_anchors(conn, [checkpoint["size"]])
    return render(request, "report.html", "/", found=found, doc=doc, totals=total_fields(doc),
                  periods=[(p, period_fields(p)) for p in doc["periods"]], checkpoint=checkpoint, anchors=anchors,
                  evidence_url=f"/api/v1/projects/{project_id}/reports/{found.period}/evidence",
                  evidence_name=f"{project_id}_{found.period.replace('..', '_')}.bundle.json")


# ---------------------------------------------------------------- log and quarantine


@router.get("/anchors")
def anchors(request: Request, _: Viewer, conn: Conn, config: Config) -> HTMLResponse:
    return render(request, "anchors.html", "/anchors", checkpoints=queries.list_checkpoints(conn, config.log_vkey),
                  log_vkey=config.log_vkey)


@router.get("/quarantine")
def quarantine(request: Request, _: Viewer, conn: Conn,
               reason: Annotated[str | None, Query(max_length=64)] = None,
               device: Annotated[str | None, Query(max_length=64)] = None,
               before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None) -> HTMLResponse:
    reason, device = reason or None, device or None  # an empty filter field means any
    found = queries.list_quarantine(conn, reason, device, QUARANTINE_PAGE, before)
    counts = queries.quarantine_counts(conn)
    devices = sorted({c.device_id for c in counts.by_device if c.device_id is not None})
    filters = {k: v for k, v in (("reason", reason), ("device", device)) if v}
    older = None if found.next_before is None else "?" + urlencode(filters | {"before": found.next_before})
    return render(request, "quarantine.html", "/quarantine", page=found, counts=counts, devices=devices,
                  reason=reason, device=device, paged=before is not None, older=older,
                  newest="?" + urlencode(filters))


# ---------------------------------------------------------------- device registry (admins)


def _admin_page(request: Request, conn: psycopg.Connection, config: ConsoleConfig, status_code: int = 200,
                **context: Any) -> HTMLResponse:
    return render(request, "admin_devices.html", "/admin/devices", status_code,
                  devices=queries.list_devices(conn, online_within_s=config.online_within_s, count_readings=False),
                  projects=[p.id for p in queries.list_projects(conn)], kinds=[k.value for k in PlantKind],
                  roles=[r.value for r in MeterRole], **context)


@router.get("/admin/devices")
def admin_devices(request: Request, _: Admin, conn: Conn, config: Config,
                  revoked: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
    return _admin_page(request, conn, config, revoked=revoked)


@router.post("/admin/devices")
def enroll(request: Request, principal: Admin, conn: Conn, config: Config,
           public_key: Annotated[str, Form(max_length=4096)], project_id: Annotated[str, Form(max_length=64)],
           kind: Annotated[str, Form(max_length=16)], capacity_w: Annotated[str, Form(max_length=20)],
           role: Annotated[str, Form(max_length=16)] = "main") -> HTMLResponse:
    """Enroll through the API's handler; the page shows the broker password once (never in a URL)."""
    form = {"public_key": public_key, "project_id": project_id, "kind": kind, "capacity_w": capacity_w,
            "role": role}
    try:
        body = api.EnrollRequest.model_validate({**form, "public_key": json.loads(public_key)})
        enrolled = api.enroll(body, principal, conn, config)
    except json.JSONDecodeError as e:
        return _admin_page(request, conn, config, 400, form=form, error=f"the public key is not JSON: {e}")
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        return _admin_page(request, conn, config, 400, form=form, error=problems)
    except HTTPException as e:
        return _admin_page(request, conn, config, e.status_code, form=form, error=str(e.detail))
    page = _admin_page(request, conn, config, enrolled=enrolled)
    page.headers["Cache-Control"] = "no-store"  # it shows the broker password
    return page


@router.post("/admin/devices/{device_id}/revoke")
def revoke(device_id: str, principal: Admin, conn: Conn, config: Config) -> RedirectResponse:
    api.revoke(device_id, principal, conn, config)  # 404 for an unknown device: the error page
    return RedirectResponse("/admin/devices?" + urlencode({"revoked": device_id}), status_code=303)
