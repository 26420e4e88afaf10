"""The suppression list: recipients never sent to again, per namespace or everywhere.

Written by the operator (hard bounces and complaints from SES feedback), by the API
(one-click unsubscribes, and admins' manual entries) and read by the workers, whose
claim looks every recipient up right before the send (:mod:`notifq.worker.store`).
Recipients are stored lower-cased; ``namespace = '*'`` suppresses in every namespace.
Postgres trouble is raised as :class:`~notifq.core.errors.DatabaseUnavailable` (503 in
the REST and the reports API).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from notifq.core.db import connection

GLOBAL = "*"
"""The namespace of entries that hold in every namespace."""

REASONS = ("bounce", "complaint", "unsubscribe", "manual")


@dataclass(frozen=True, slots=True)
class Entry:
    namespace: str
    recipient: str
    reason: str
    detail: str | None
    source: str | None
    created_at: datetime


def normalize(recipient: str) -> str:
    return recipient.strip().lower()


async def add(
    pool: AsyncConnectionPool,
    namespace: str,
    recipients: Sequence[str],
    reason: str,
    detail: str | None = None,
    source: str | None = None,
) -> int:
    """Suppress ``recipients`` in ``namespace``; returns how many were new (an entry that
    exists keeps its first reason)."""
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    wanted = sorted({normalize(r) for r in recipients if r.strip()})
    if not wanted:
        return 0
    async with connection(pool) as conn:
        cur = await conn.execute(
            "INSERT INTO suppression (namespace, recipient, reason, detail, source) "
            "SELECT %s, r, %s, %s, %s FROM unnest(%s::text[]) AS r "
            "ON CONFLICT (namespace, recipient) DO NOTHING",
            (namespace, reason, detail, source, wanted),
        )
        return cur.rowcount


async def remove(pool: AsyncConnectionPool, namespace: str, recipient: str) -> bool:
    """Take one entry off the list; False when there was none."""
    async with connection(pool) as conn:
        cur = await conn.execute(
            "DELETE FROM suppression WHERE namespace = %s AND recipient = %s",
            (namespace, normalize(recipient)),
        )
        return cur.rowcount == 1


async def page(
    pool: AsyncConnectionPool,
    namespace: str,
    *,
    after: str = "",
    limit: int = 100,
    recipient: str | None = None,
) -> list[Entry]:
    """Entries of ``namespace`` in recipient order after ``after`` (keyset pagination), or
    the one entry of ``recipient``."""
    async with connection(pool) as conn:
        cur = await conn.execute(
            "SELECT namespace, recipient, reason, detail, source, created_at FROM suppression "
            "WHERE namespace = %s AND recipient > %s AND (%s::text IS NULL OR recipient = %s) "
            "ORDER BY recipient LIMIT %s",
            (
                namespace,
                after,
                None if recipient is None else normalize(recipient),
                None if recipient is None else normalize(recipient),
                limit,
            ),
        )
        return [Entry(*r) for r in await cur.fetchall()]
