"""Postgres side of the operator: materialize campaigns, derive counts, change state.

Every function here is safe to repeat. Materialization inserts the campaign row
and COPYs every message row in one transaction that also sets
``materialized_at``: an operator killed half-way leaves nothing behind, and a
repeat finds the work done.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from notifq.core import queries
from notifq.core import recipients as rcpt

COPY_BATCH = 20_000


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


def _escape(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


async def get(pool: AsyncConnectionPool, cid: uuid.UUID) -> Stored | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT total, chunk_size, state, max_attempts, backoff_ms, materialized_at, "
            "started_at FROM campaign WHERE id = %s",
            (cid,),
        )
        row = await cur.fetchone()
    return None if row is None else Stored(*row)


async def materialize(
    pool: AsyncConnectionPool, camp: CampaignRow, recipients: Iterable[str], *, validate: bool
) -> int:
    """Store the campaign and all its message rows, once. Returns the message count."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO campaign (id, namespace, name, channel, provider, subject, body, "
            "max_attempts, backoff_ms, chunk_size, rate_limit, total, state, phase, sent_count, "
            "failed_count) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 'active', "
            "'Pending', 0, 0) ON CONFLICT (id) DO NOTHING",
            (
                camp.id,
                camp.namespace,
                camp.name,
                camp.channel,
                camp.provider,
                camp.subject,
                camp.body,
                camp.max_attempts,
                camp.backoff_ms,
                camp.chunk_size,
                camp.rate_limit,
            ),
        )
        cur = await conn.execute(
            "SELECT total, materialized_at FROM campaign WHERE id = %s FOR UPDATE", (camp.id,)
        )
        row = await cur.fetchone()
        assert row is not None
        if row[1] is not None:
            return int(row[0])
        total = await _copy_messages(conn, camp, recipients, validate=validate)
        await conn.execute(
            "UPDATE campaign SET total = %s, materialized_at = now(), started_at = now(), "
            "updated_at = now() WHERE id = %s",
            (total, camp.id),
        )
    return total


async def _copy_messages(
    conn: AsyncConnection, camp: CampaignRow, recipients: Iterable[str], *, validate: bool
) -> int:
    cid = str(camp.id)
    seq = 0
    buf: list[str] = []
    async with (
        conn.cursor() as cur,
        cur.copy(
            "COPY message (campaign_id, seq, recipient, status, last_error) FROM STDIN"
        ) as copy,
    ):
        for r in recipients:
            if validate and not rcpt.is_valid(camp.channel, r):
                buf.append(f"{cid}\t{seq}\t{_escape(r)}\tfailed\t{rcpt.INVALID_ADDRESS}\n")
            else:
                buf.append(f"{cid}\t{seq}\t{_escape(r) if validate else r}\tpending\t\\N\n")
            seq += 1
            if len(buf) >= COPY_BATCH:
                await copy.write("".join(buf))
                buf.clear()
        if buf:
            await copy.write("".join(buf))
    return seq


async def counts(pool: AsyncConnectionPool, cid: uuid.UUID) -> dict[str, int]:
    """Messages per status, from the (campaign_id, status, seq) index."""
    async with pool.connection() as conn:
        cur = await conn.execute(queries.COUNT_BY_STATUS, (cid,))
        rows = await cur.fetchall()
    out = {"pending": 0, "sent": 0, "failed": 0, "cancelled": 0}
    out.update({str(s): int(n) for s, n in rows})
    return out


async def pending_chunks(pool: AsyncConnectionPool, cid: uuid.UUID, chunk_size: int) -> list[int]:
    """Chunk numbers that still hold pending messages."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT DISTINCT seq / %s FROM message WHERE campaign_id = %s AND status = 'pending' "
            "ORDER BY 1",
            (chunk_size, cid),
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


async def cancel(pool: AsyncConnectionPool, cid: uuid.UUID, *, deleted: bool = False) -> int:
    """Stop for good: pending messages become cancelled. Returns how many."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE campaign SET state = 'cancelled', updated_at = now(), "
            "deleted_at = CASE WHEN %s THEN now() ELSE deleted_at END WHERE id = %s",
            (deleted, cid),
        )
        cur = await conn.execute(
            "UPDATE message SET status = 'cancelled', updated_at = now() "
            "WHERE campaign_id = %s AND status = 'pending'",
            (cid,),
        )
        return cur.rowcount


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


async def snapshot(
    pool: AsyncConnectionPool, cid: uuid.UUID, phase: str, sent: int, failed: int, final: bool
) -> None:
    """Record what the status says, for cheap listing by the API."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE campaign SET phase = %s, sent_count = %s, failed_count = %s, "
            "finished_at = CASE WHEN %s THEN coalesce(finished_at, now()) ELSE NULL END, "
            "updated_at = now() WHERE id = %s",
            (phase, sent, failed, final, cid),
        )


async def backlog(pool: AsyncConnectionPool) -> int:
    """Messages ready to work on: pending rows of active, unfinished campaigns."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM message m JOIN campaign c ON c.id = m.campaign_id "
            "WHERE c.state = 'active' AND c.materialized_at IS NOT NULL "
            "AND c.finished_at IS NULL AND m.status = 'pending'"
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0
