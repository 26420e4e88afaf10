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
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    check: bool = False,
    custom_plans: bool = False,
) -> AsyncConnectionPool:
    """Open an async pool and wait until one connection works. ``check``: test each
    connection as it is handed out (one round trip), so a pool that sat idle through a
    Postgres restart never hands out a dead one. ``custom_plans``: every execution of a
    prepared statement is planned for its own parameters (see :func:`_custom_plans`)."""
    pool = AsyncConnectionPool(
        libpq_url(url),
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True},
        reconnect_timeout=3600,
        check=AsyncConnectionPool.check_connection if check else None,
        configure=_custom_plans if custom_plans else None,
    )
    try:
        await pool.open(wait=True, timeout=30)
    except Exception as exc:
        raise DatabaseUnavailable(f"cannot connect to Postgres: {exc}") from exc
    return pool


async def _custom_plans(conn: psycopg.AsyncConnection[Any]) -> None:
    """``plan_cache_mode = force_custom_plan`` for this connection.

    The workers run a few prepared statements thousands of times, each on one campaign's
    partition and one range of ``seq``. After five executions Postgres may switch such a
    statement to a generic plan, planned without the campaign or the range: partitions
    are then pruned at run time and the join of an outcome write is estimated blind. On a
    100,000-message campaign the write of 500 outcomes took 122 ms on average with the
    generic plan and 13 ms with plans made for its parameters (planning costs well under
    a millisecond); see docs/architecture.md. A SET, not a startup option, so poolers
    that refuse startup options still work.
    """
    await conn.execute("SET plan_cache_mode = force_custom_plan")


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
