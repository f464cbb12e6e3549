"""The console application: `create_app(config)` wires the API, the login handlers and the pages to a
psycopg connection pool opened for the app's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from psycopg_pool import ConnectionPool

from mrv_engine.console import api, auth, pages
from mrv_engine.console.config import ConsoleConfig
from mrv_engine.console.throttle import LoginThrottle

STATIC_DIR = Path(__file__).parent / "static"


def create_app(config: ConsoleConfig) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = ConnectionPool(config.conninfo, min_size=config.pool_min, max_size=config.pool_max,
                              kwargs={"autocommit": True}, open=False, name="console")
        pool.open(wait=True, timeout=30)
        app.state.pool = pool
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="mrv console", version="1", lifespan=lifespan,
                  description="Projects, devices, readings, quarantine, the Merkle log's checkpoints and anchors, "
                              "monitoring reports and their evidence bundles. Authenticate with "
                              "`Authorization: Bearer <token>` (`mrv console token create USER`) or a login session.")
    app.state.config = config
    app.state.login_throttle = LoginThrottle(config.login_failures_per_user, config.login_failures_per_address,
                                             config.login_failure_window_s)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 body without the submitted values (`input`): they may be passwords or tokens."""
        problems = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        try:
            with app.state.pool.connection(timeout=5) as conn:
                conn.execute("SELECT 1")
        except Exception as e:
            raise HTTPException(503, f"database unavailable: {type(e).__name__}") from None
        return {"status": "ok"}

    app.include_router(api.router)
    app.include_router(auth.router)
    app.include_router(pages.router)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
