"""The API's Postgres reads (admin accounts, the only rows it writes: ``accounts``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Error as PsycopgError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from notifq.core import queries
from notifq.core.errors import DatabaseUnavailable
from notifq.core.recipients import RECIPIENT_OF_CAMPAIGN


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


async def _fetch(
    pool: AsyncConnectionPool, sql: str, params: tuple[object, ...]
) -> list[tuple[Any, ...]]:
    try:
        async with pool.connection(timeout=10) as conn:
            cur = await conn.execute(sql, params)
            # rownumber, not description: None without a result, and it builds no columns
            return list(await cur.fetchall()) if cur.rownumber is not None else []
    except (PsycopgError, PoolTimeout) as exc:
        raise DatabaseUnavailable(f"Postgres: {exc}") from exc


async def campaign_location(pool: AsyncConnectionPool, cid: uuid.UUID) -> tuple[str, str] | None:
    """The namespace and resource name the operator stored for campaign ``cid`` (None
    before it did): ids are unique across namespaces, the row knows its namespace."""
    rows = await _fetch(pool, "SELECT namespace, name FROM campaign WHERE id = %s", (cid,))
    return (str(rows[0][0]), str(rows[0][1])) if rows else None


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


PROGRESS_KEYS = ("pending", "queued", "sent", "failed", "cancelled", "suppressed")
"""The states of :func:`progress`, in :data:`queries.COUNTERS`' order."""


async def progress(pool: AsyncConnectionPool, cid: uuid.UUID) -> dict[str, int]:
    """Messages per state: ``pending`` split into not yet attempted and ``queued`` (waiting
    for a retry), then ``sent``, ``failed``, ``cancelled``, ``suppressed``; from the
    campaign's per-chunk counters (O(chunks), never a scan of its messages)."""
    rows = await _fetch(pool, queries.COUNTERS, (cid,))
    return dict(zip(PROGRESS_KEYS, (int(n) for n in rows[0]), strict=True))


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
        progress=dict(zip(PROGRESS_KEYS, (int(x) for x in n), strict=True)),
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
        f"SELECT m.seq, {RECIPIENT_OF_CAMPAIGN}, m.status, m.attempts, m.last_error, m.sent_at, "
        "m.updated_at FROM message m JOIN campaign c ON c.id = m.campaign_id "
        "WHERE m.campaign_id = %s AND m.seq > %s AND (%s::text IS NULL OR m.status = %s) "
        "ORDER BY m.seq LIMIT %s",
        (cid, after, status, status, limit),
    )
    return [MessageRow(*r) for r in rows]


async def ping(pool: AsyncConnectionPool) -> None:
    await _fetch(pool, "SELECT 1", ())
