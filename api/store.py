"""The API's Postgres reads, and admin accounts (the only rows the API writes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Error as PsycopgError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from notifq.core import queries
from notifq.core.errors import DatabaseUnavailable


@dataclass(frozen=True)
class AdminRow:
    id: uuid.UUID
    email: str
    password_hash: str


@dataclass(frozen=True)
class MessageRow:
    seq: int
    recipient: str
    status: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class DetailRow:
    """A stored campaign as the operator last copied its status (see :func:`detail`)."""

    name: str
    display_name: str | None
    created: datetime
    updated: datetime
    phase: str
    total: int
    sent: int
    failed: int
    message: str
    quota: dict[str, Any] | None
    progress: dict[str, int]
    """Messages per state, as :func:`progress` counts them."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def _fetch(
    pool: AsyncConnectionPool, sql: str, params: tuple[object, ...]
) -> list[tuple[Any, ...]]:
    try:
        async with pool.connection(timeout=10) as conn:
            cur = await conn.execute(sql, params)
            return list(await cur.fetchall()) if cur.description else []
    except (PsycopgError, PoolTimeout) as exc:
        raise DatabaseUnavailable(f"Postgres: {exc}") from exc


async def admin_by_email(pool: AsyncConnectionPool, email: str) -> AdminRow | None:
    rows = await _fetch(
        pool,
        "SELECT id, email, password_hash FROM admin WHERE email = %s",
        (normalize_email(email),),
    )
    return AdminRow(*rows[0]) if rows else None


async def admin_by_id(pool: AsyncConnectionPool, admin_id: uuid.UUID) -> AdminRow | None:
    rows = await _fetch(
        pool, "SELECT id, email, password_hash FROM admin WHERE id = %s", (admin_id,)
    )
    return AdminRow(*rows[0]) if rows else None


UPSERT_ADMIN = """
INSERT INTO admin (id, email, password_hash) VALUES (%s, %s, %s)
ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = now()
"""


async def upsert_admin(pool: AsyncConnectionPool, email: str, password_hash: str) -> None:
    await _fetch(pool, UPSERT_ADMIN, (uuid.uuid4(), normalize_email(email), password_hash))


async def campaign_name(pool: AsyncConnectionPool, cid: uuid.UUID, namespace: str) -> str | None:
    """The resource name the operator stored for campaign ``cid`` (None before it did)."""
    rows = await _fetch(
        pool, "SELECT name FROM campaign WHERE id = %s AND namespace = %s", (cid, namespace)
    )
    return str(rows[0][0]) if rows else None


async def campaign_id_by_name(
    pool: AsyncConnectionPool, namespace: str, name: str
) -> uuid.UUID | None:
    """The newest stored campaign of that name that was not deleted."""
    rows = await _fetch(
        pool,
        "SELECT id FROM campaign WHERE namespace = %s AND name = %s AND deleted_at IS NULL "
        "ORDER BY created_at DESC LIMIT 1",
        (namespace, name),
    )
    return rows[0][0] if rows else None


async def progress(pool: AsyncConnectionPool, cid: uuid.UUID) -> dict[str, int]:
    """Messages per state: ``pending`` split into not yet attempted and ``queued`` (waiting
    for a retry), then ``sent``, ``failed``, ``cancelled``; from the campaign's per-chunk
    counters (O(chunks), never a scan of its messages)."""
    rows = await _fetch(pool, queries.COUNTERS, (cid,))
    keys = ("pending", "queued", "sent", "failed", "cancelled")
    return dict(zip(keys, (int(n) for n in rows[0]), strict=True))


DETAIL = f"""
SELECT c.name, c.display_name, c.resource_created_at, c.status_at, c.phase, c.total,
       c.sent_count, c.failed_count, c.status_message, c.status_quota, k.*
FROM campaign c,
     LATERAL (SELECT {queries.COUNTER_SUMS} FROM message_count WHERE campaign_id = c.id) k
WHERE c.id = %s AND c.namespace = %s AND c.materialized_at IS NOT NULL
  AND c.deleted_at IS NULL AND c.status_at IS NOT NULL
"""


async def detail(pool: AsyncConnectionPool, cid: uuid.UUID, namespace: str) -> DetailRow | None:
    """Campaign ``cid`` of ``namespace`` from its row and counters in one indexed read
    (O(chunks)); None when the operator has not copied its status there (not stored yet,
    stored by an older operator, or deleted): the caller reads the resource instead."""
    rows = await _fetch(pool, DETAIL, (cid, namespace))
    if not rows:
        return None
    name, display, created, updated, phase, total, sent, failed, message, quota, *n = rows[0]
    keys = ("pending", "queued", "sent", "failed", "cancelled")
    return DetailRow(
        name=name,
        display_name=display,
        created=created,
        updated=updated,
        phase=phase,
        total=int(total),
        sent=int(sent),
        failed=int(failed),
        message=message or "",
        quota=quota,
        progress=dict(zip(keys, (int(x) for x in n), strict=True)),
    )


async def snapshots(pool: AsyncConnectionPool, cids: list[uuid.UUID]) -> dict[str, dict[str, Any]]:
    """What the operator last wrote to the status of each stored campaign of ``cids``
    (``phase``, ``total``, ``sent``, ``failed``; by id as text): one indexed read for a
    page of the list, so it never needs the resources' specs or status."""
    rows = await _fetch(
        pool,
        "SELECT id, phase, total, sent_count, failed_count FROM campaign "
        "WHERE id = ANY(%s) AND materialized_at IS NOT NULL AND deleted_at IS NULL",
        (cids,),
    )
    return {
        str(cid): {"phase": phase, "total": total, "sent": sent, "failed": failed}
        for cid, phase, total, sent, failed in rows
    }


async def retryable(pool: AsyncConnectionPool, cid: uuid.UUID) -> int:
    """Failed messages a retry would re-send (invalid addresses never succeed)."""
    rows = await _fetch(pool, queries.COUNT_RETRYABLE, (cid, queries.RETRYABLE_PARAM))
    return int(rows[0][0])


async def messages(
    pool: AsyncConnectionPool, cid: uuid.UUID, status: str | None, after: int, limit: int
) -> list[MessageRow]:
    """One page of messages in ``seq`` order (keyset pagination)."""
    rows = await _fetch(
        pool,
        "SELECT seq, recipient, status, attempts, last_error, sent_at, updated_at FROM message "
        "WHERE campaign_id = %s AND seq > %s AND (%s::text IS NULL OR status = %s) "
        "ORDER BY seq LIMIT %s",
        (cid, after, status, status, limit),
    )
    return [MessageRow(*r) for r in rows]


async def ping(pool: AsyncConnectionPool) -> None:
    await _fetch(pool, "SELECT 1", ())
