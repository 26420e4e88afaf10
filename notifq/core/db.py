"""Postgres connections: URL helpers and a psycopg async pool factory.

Hot paths (COPY of message rows, batched status writes, counts) use psycopg
directly, with the SQL next to the code that runs it (statements that several
components run live in :mod:`notifq.core.queries`); the schema itself is
defined by SQLAlchemy models and changed only through Alembic migrations.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from notifq.core.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


def libpq_url(url: str) -> str:
    """The URL in libpq form (``postgresql://``), whatever SQLAlchemy dialect it names."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def sqlalchemy_url(url: str) -> str:
    """The URL in SQLAlchemy form, using the psycopg 3 driver."""
    return "postgresql+psycopg://" + libpq_url(url)[len("postgresql://") :]


async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 8, check: bool = False
) -> AsyncConnectionPool:
    """Open an async pool and wait until one connection works. ``check``: test each
    connection as it is handed out (one round trip), so a pool that sat idle through a
    Postgres restart never hands out a dead one."""
    pool = AsyncConnectionPool(
        libpq_url(url),
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True},
        reconnect_timeout=3600,
        check=AsyncConnectionPool.check_connection if check else None,
    )
    try:
        await pool.open(wait=True, timeout=30)
    except Exception as exc:
        raise DatabaseUnavailable(f"cannot connect to Postgres: {exc}") from exc
    return pool


UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
"""What psycopg raises when Postgres cannot be reached or the connection broke."""
CONNECTION_WAIT = 10.0
"""Seconds :func:`connection` waits for a pooled connection."""


@asynccontextmanager
async def connection(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled connection whose trouble (none free within ``CONNECTION_WAIT`` seconds, a
    broken one) is raised as :class:`DatabaseUnavailable`: the API answers it 503, not 500."""
    try:
        async with pool.connection(timeout=CONNECTION_WAIT) as conn:
            yield conn
    except UNAVAILABLE as exc:
        raise DatabaseUnavailable(f"Postgres: {exc}") from exc
