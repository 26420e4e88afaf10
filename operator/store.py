"""Postgres side of the operator: derive counts, change state (storing a campaign's
rows is :mod:`notifq.operator.storing`).

Every function here is safe to repeat.

Counts are read from the per-chunk counters (``message_count``) that the
database keeps with every write of message rows (migration 0005; rows stored
into a campaign's own partition are counted when it is attached), so no read
here scans a campaign's messages.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from notifq.core import queries


@dataclass(frozen=True, slots=True)
class CampaignRow:
    """What the operator stores about a campaign besides its messages."""

    id: uuid.UUID
    namespace: str
    name: str
    channel: str
    provider: str
    subject: str
    body: str
    max_attempts: int
    backoff_ms: int
    chunk_size: int
    rate_limit: int | None = None
    html: str | None = None
    """The HTML template (None: text only; ``body`` empty: the text is made from it)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """The campaign as stored: enough to enqueue and to report."""

    total: int
    chunk_size: int
    state: str
    max_attempts: int
    backoff_ms: int
    materialized_at: datetime | None
    started_at: datetime | None
    rate_limit: int | None
    expired_at: datetime | None = None
    """Set once retention dropped the rows: nothing is left to reconcile."""
    bounced: int = 0
    complained: int = 0
    guard_tripped_at: datetime | None = None
    """When the reputation guard suspended the campaign (None: it never did)."""
    guard_reason: str | None = None
    status_at: datetime | None = None
    """When :func:`snapshot` last copied the status with :class:`Shown` (None: never)."""


async def get(pool: AsyncConnectionPool, cid: uuid.UUID) -> Stored | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT total, chunk_size, state, max_attempts, backoff_ms, materialized_at, "
            "started_at, rate_limit, expired_at, bounced, complained, guard_tripped_at, "
            "guard_reason, status_at FROM campaign WHERE id = %s",
            (cid,),
        )
        row = await cur.fetchone()
    return None if row is None else Stored(*row)


async def counts(pool: AsyncConnectionPool, cid: uuid.UUID) -> dict[str, int]:
    """Messages per status, from the campaign's per-chunk counters (O(chunks))."""
    async with pool.connection() as conn:
        cur = await conn.execute(queries.COUNTERS, (cid,), prepare=True)
        row = await cur.fetchone()
    pending, queued, sent, failed, cancelled, suppressed = (
        (int(n) for n in row) if row else (0,) * 6
    )
    return {
        "pending": pending + queued,
        "sent": sent,
        "failed": failed,
        "cancelled": cancelled,
        "suppressed": suppressed,
    }


FAILURE_REASONS_LIMIT = 10
"""Most common failure reasons kept in a campaign's status."""


async def failure_reasons(pool: AsyncConnectionPool, cid: uuid.UUID) -> list[dict[str, Any]]:
    """The most common reasons of a campaign's failed messages, with counts (no recipients).

    Runs only when the failed count changed; it reads the failed rows of one campaign.
    """
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT coalesce(last_error, 'unknown'), count(*) FROM message "
            "WHERE campaign_id = %s AND status = 'failed' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s",
            (cid, FAILURE_REASONS_LIMIT),
        )
        return [{"reason": str(r)[:300], "count": int(n)} for r, n in await cur.fetchall()]


async def trip_guard(pool: AsyncConnectionPool, cid: uuid.UUID, reason: str) -> bool:
    """Record that the reputation guard suspended the campaign (once): True when this call
    did it (the suspend itself follows the spec, as any suspend)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE campaign SET guard_tripped_at = now(), guard_reason = %s, "
            "updated_at = now() WHERE id = %s AND guard_tripped_at IS NULL",
            (reason, cid),
        )
        return cur.rowcount == 1


async def mark_queued(pool: AsyncConnectionPool, cid: uuid.UUID) -> None:
    """Record when the campaign's chunk jobs were all enqueued (the first time only)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE campaign SET queued_at = coalesce(queued_at, now()) WHERE id = %s", (cid,)
        )


async def pending_chunks(pool: AsyncConnectionPool, cid: uuid.UUID) -> list[int]:
    """Chunk numbers (``seq / chunk_size``) that still hold pending messages, from the
    counters (O(chunks))."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT chunk FROM message_count WHERE campaign_id = %s AND pending + queued > 0 "
            "ORDER BY 1",
            (cid,),
        )
        return [int(r[0]) for r in await cur.fetchall()]


async def set_state(pool: AsyncConnectionPool, cid: uuid.UUID, state: str) -> bool:
    """Change the campaign's intent (never out of ``cancelled``). True if it changed."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE campaign SET state = %s, updated_at = now() "
            "WHERE id = %s AND state <> %s AND state <> 'cancelled'",
            (state, cid, state),
        )
        return cur.rowcount > 0


async def stop(pool: AsyncConnectionPool, cid: uuid.UUID) -> None:
    """First step of a cancel or delete, committed on its own and at once: the workers'
    claim checks this state, so no slice is claimed after it (cancelling the pending
    rows, a longer UPDATE, follows in :func:`cancel` or :func:`tombstone`)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE campaign SET state = 'cancelled', updated_at = now() "
            "WHERE id = %s AND state <> 'cancelled'",
            (cid,),
        )


async def cancel(pool: AsyncConnectionPool, cid: uuid.UUID) -> int:
    """Stop for good: pending messages become cancelled. Returns how many."""
    await stop(pool, cid)
    async with pool.connection() as conn, conn.transaction():
        return await _cancel_pending(conn, cid)


async def tombstone(
    pool: AsyncConnectionPool, cid: uuid.UUID, namespace: str, name: str, chunk_size: int
) -> tuple[int, int, int]:
    """Record that the resource is gone: cancelled and ``deleted_at``, stored or not.

    A campaign being stored meanwhile waits for this row (or this for its COPY) and
    then copies nothing, or has its pending rows cancelled here. Returns (messages
    cancelled, total, chunk size).
    """
    await stop(pool, cid)  # a stored campaign stops sending before its rows are cancelled
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO campaign (id, namespace, name, channel, provider, subject, body, "
            "max_attempts, backoff_ms, chunk_size, total, state, phase, sent_count, "
            "failed_count, deleted_at) VALUES (%s, %s, %s, '', '', '', '', 0, 0, %s, 0, "
            "'cancelled', 'Cancelled', 0, 0, now()) ON CONFLICT (id) DO UPDATE SET "
            "state = 'cancelled', updated_at = now(), "
            "deleted_at = coalesce(campaign.deleted_at, now()) RETURNING total, chunk_size",
            (cid, namespace, name, chunk_size),
        )
        row = await cur.fetchone()
        assert row is not None
        return await _cancel_pending(conn, cid), int(row[0]), int(row[1])


async def _cancel_pending(conn: AsyncConnection, cid: uuid.UUID) -> int:
    cur = await conn.execute(
        "UPDATE message SET status = 'cancelled', updated_at = now() "
        "WHERE campaign_id = %s AND status = 'pending'",
        (cid,),
    )
    return cur.rowcount


@asynccontextmanager
async def locked_state(pool: AsyncConnectionPool, cid: uuid.UUID) -> AsyncIterator[str | None]:
    """The campaign's state, held (``FOR SHARE``) until the block ends.

    Jobs are added only inside this block and only while it says ``active``;
    cancel, suspend and delete change the row, so they wait for the block and
    withdraw jobs after their own commit.
    """
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute("SELECT state FROM campaign WHERE id = %s FOR SHARE", (cid,))
        row = await cur.fetchone()
        yield None if row is None else str(row[0])


async def set_rate_limit(pool: AsyncConnectionPool, cid: uuid.UUID, rate_limit: int | None) -> None:
    """A new ``spec.rateLimit``; workers re-read the row every second."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE campaign SET rate_limit = %s, updated_at = now() WHERE id = %s",
            (rate_limit, cid),
        )


async def unfinished(pool: AsyncConnectionPool) -> list[tuple[uuid.UUID, str, str]]:
    """(id, namespace, name) of campaigns neither finished nor marked deleted."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, namespace, name FROM campaign "
            "WHERE deleted_at IS NULL AND finished_at IS NULL"
        )
        return [(r[0], str(r[1]), str(r[2])) for r in await cur.fetchall()]


async def retry_failed(pool: AsyncConnectionPool, cid: uuid.UUID) -> int:
    """Failed messages (except invalid addresses) become pending with fresh attempts."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(queries.RETRY, (cid, queries.RETRYABLE_PARAM))
        n = cur.rowcount
        if n:
            await conn.execute(
                "UPDATE campaign SET finished_at = NULL, updated_at = now() WHERE id = %s", (cid,)
            )
        return n


async def fail_pending(
    pool: AsyncConnectionPool, cid: uuid.UUID, start: int, end: int, reason: str
) -> int:
    """Fail the pending messages with ``seq`` in ``[start, end)`` for ``reason``."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE message SET status = 'failed', last_error = %s, updated_at = now() "
            "WHERE campaign_id = %s AND seq >= %s AND seq < %s AND status = 'pending'",
            (reason, cid, start, end),
        )
        return cur.rowcount


@dataclass(frozen=True, slots=True)
class Shown:
    """The rest of what the API's detail shows of a campaign, copied with the counts."""

    display_name: str | None
    created: datetime | None
    """The resource's ``metadata.creationTimestamp``."""
    message: str
    quota: Mapping[str, Any] | None


async def snapshot(
    pool: AsyncConnectionPool,
    cid: uuid.UUID,
    phase: str,
    sent: int,
    failed: int,
    final: bool,
    shown: Shown | None = None,
) -> None:
    """Record what the status says, for cheap reads by the API (its list reads the counts,
    its detail also what ``shown`` holds, and reads the resource while ``status_at`` is
    NULL)."""
    async with pool.connection() as conn:
        if shown is None:
            await conn.execute(
                "UPDATE campaign SET phase = %s, sent_count = %s, failed_count = %s, "
                "finished_at = CASE WHEN %s THEN coalesce(finished_at, now()) ELSE NULL END, "
                "updated_at = now() WHERE id = %s",
                (phase, sent, failed, final, cid),
            )
            return
        await conn.execute(
            "UPDATE campaign SET phase = %s, sent_count = %s, failed_count = %s, "
            "finished_at = CASE WHEN %s THEN coalesce(finished_at, now()) ELSE NULL END, "
            "display_name = %s, resource_created_at = %s, status_message = %s, "
            "status_quota = %s, status_at = now(), updated_at = now() WHERE id = %s",
            (
                phase,
                sent,
                failed,
                final,
                shown.display_name,
                shown.created,
                shown.message,
                Jsonb(dict(shown.quota)) if shown.quota else None,
                cid,
            ),
        )


async def backlog(pool: AsyncConnectionPool) -> int:
    """Messages ready to work on: pending messages of active, unfinished campaigns, from
    their counters (O(chunks of those campaigns))."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT coalesce(sum(k.pending + k.queued), 0) FROM campaign c "
            "JOIN message_count k ON k.campaign_id = c.id "
            "WHERE c.state = 'active' AND c.materialized_at IS NOT NULL "
            "AND c.finished_at IS NULL"
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0
