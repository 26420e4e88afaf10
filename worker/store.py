"""Postgres side of the worker: read a chunk's pending rows, write outcomes in batches.

One SELECT per chunk and one UPDATE per write batch: no per-message commit and
no campaign counter (counts are derived by the operator). The UPDATE only
touches rows that are still ``pending``, so a message already sent is never
overwritten and a cancelled campaign stays cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from notifq.core.errors import DatabaseUnavailable
from notifq.core.templating import MessageTemplate

log = logging.getLogger(__name__)

WRITE_RETRY_SECONDS = 120.0
"""How long a status write is retried through a database outage before giving up."""


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    id: uuid.UUID
    name: str
    channel: str
    provider: str
    state: str
    max_attempts: int
    rate_limit: int | None
    template: MessageTemplate


@dataclass(frozen=True, slots=True)
class PendingRow:
    seq: int
    recipient: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Write:
    """The new state of one message after one attempt."""

    seq: int
    status: str  # 'sent' | 'failed' | 'pending' (a transient failure to retry)
    error: str | None
    provider: str
    provider_id: str | None


class CampaignCache:
    """Campaign rows by id; the ``state`` is re-read at most every ``ttl`` seconds."""

    def __init__(self, pool: AsyncConnectionPool, ttl: float = 1.0) -> None:
        self.pool = pool
        self.ttl = ttl
        self._items: dict[uuid.UUID, tuple[float, CampaignInfo]] = {}

    async def get(self, cid: uuid.UUID) -> CampaignInfo | None:
        hit = self._items.get(cid)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT name, channel, provider, state, max_attempts, rate_limit, subject, body "
                "FROM campaign WHERE id = %s",
                (cid,),
            )
            row = await cur.fetchone()
        if row is None:
            self._items.pop(cid, None)
            return None
        name, channel, provider, state, max_attempts, rate_limit, subject, body = row
        template = hit[1].template if hit is not None else MessageTemplate(name, subject, body)
        info = CampaignInfo(cid, name, channel, provider, state, max_attempts, rate_limit, template)
        if len(self._items) > 1000:
            self._items.clear()
        self._items[cid] = (now, info)
        return info

    async def is_active(self, cid: uuid.UUID) -> bool:
        """The campaign's state read now (not cached): checked right before each send."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT state = 'active' FROM campaign WHERE id = %s", (cid,), prepare=True
            )
            row = await cur.fetchone()
        return bool(row and row[0])


async def fetch_pending(
    pool: AsyncConnectionPool, cid: uuid.UUID, start: int, end: int
) -> list[PendingRow]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT seq, recipient, attempts FROM message WHERE campaign_id = %s "
            "AND seq >= %s AND seq < %s AND status = 'pending' ORDER BY seq",
            (cid, start, end),
            prepare=True,
        )
        return [PendingRow(*r) for r in await cur.fetchall()]


UPDATE_SQL = """
UPDATE message AS m SET
  status = u.status,
  attempts = m.attempts + 1,
  last_error = u.err,
  provider = u.provider,
  provider_message_id = coalesce(u.pid, m.provider_message_id),
  sent_at = CASE WHEN u.status = 'sent' THEN now() ELSE m.sent_at END,
  updated_at = now()
FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::text[])
  AS u(seq, status, err, provider, pid)
WHERE m.campaign_id = %s AND m.status = 'pending' AND m.seq BETWEEN %s AND %s
  AND m.seq = u.seq
"""
# The seq bounds keep the index scan to the batch's own range: without them the
# planner hash-joins against every pending row of the campaign (30 ms per batch of
# 500 on a 100,000-message campaign instead of well under 1 ms).


COUNTER_SQL = """
UPDATE campaign SET sent_count = sent_count + %s, failed_count = failed_count + %s,
  updated_at = now() WHERE id = %s
"""


async def write(
    pool: AsyncConnectionPool, cid: uuid.UUID, writes: Sequence[Write], *, counter: bool = False
) -> int:
    """Record outcomes in one statement; retried through short database outages.

    ``counter`` (benchmarks only) also bumps the campaign's counters in the same
    transaction, as the reference service did per message: a hot row.
    """
    if not writes:
        return 0
    params = (
        [w.seq for w in writes],
        [w.status for w in writes],
        [w.error for w in writes],
        [w.provider for w in writes],
        [w.provider_id for w in writes],
        cid,
        min(w.seq for w in writes),
        max(w.seq for w in writes),
    )
    deadline = time.monotonic() + WRITE_RETRY_SECONDS
    delay = 0.2
    while True:
        try:
            async with pool.connection() as conn:
                if not counter:
                    cur = await conn.execute(UPDATE_SQL, params, prepare=True)
                    return cur.rowcount
                async with conn.transaction():
                    cur = await conn.execute(UPDATE_SQL, params, prepare=True)
                    sent = sum(w.status == "sent" for w in writes)
                    failed = sum(w.status == "failed" for w in writes)
                    await conn.execute(COUNTER_SQL, (sent, failed, cid), prepare=True)
                    return cur.rowcount
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(f"status write failed: {exc}") from exc
            log.warning("status write failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
