"""FastAPI dependencies shared by the API and the pages: the configuration and a database connection.

`create_app` puts the configuration and a psycopg_pool.ConnectionPool (autocommit connections) on
`app.state.config` and `app.state.pool`.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from fastapi import Request
from psycopg_pool import ConnectionPool

from mrv_engine.console.config import ConsoleConfig


def get_config(request: Request) -> ConsoleConfig:
    config: ConsoleConfig = request.app.state.config
    return config


def get_pool(request: Request) -> ConnectionPool:
    pool: ConnectionPool = request.app.state.pool
    return pool


def get_conn(request: Request) -> Iterator[psycopg.Connection]:
    """An autocommit connection from the pool for the request (one per request: FastAPI caches it)."""
    with get_pool(request).connection() as conn:
        yield conn
