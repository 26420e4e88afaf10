"""Retention: message rows of campaigns finished long enough ago are dropped, one partition
(one campaign) at a time, with ``DETACH PARTITION ... CONCURRENTLY`` then ``DROP TABLE``, so
the workers' reads and writes of other campaigns never wait (a DELETE of millions of rows
would hold them and bloat the table). The campaign row stays, marked ``expired_at``, with
its last counts; the resource's status is untouched.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from psycopg_pool import AsyncConnectionPool

from notifq.core import partitions
from notifq.operator.context import OperatorContext

log = logging.getLogger(__name__)

DUE = """
SELECT id FROM campaign
WHERE expired_at IS NULL AND materialized_at IS NOT NULL
  AND (finished_at < now() - make_interval(secs => %(secs)s)
       OR (finished_at IS NULL AND deleted_at < now() - make_interval(secs => %(secs)s)))
ORDER BY coalesce(finished_at, deleted_at) LIMIT %(limit)s
"""
"""Campaigns whose rows are past the retention (finished, or deleted, that long ago)."""


async def expire(pool: AsyncConnectionPool, days: float, limit: int = 100) -> list[uuid.UUID]:
    """Drop the rows of up to ``limit`` campaigns past ``days``; their ids."""
    async with pool.connection() as conn:
        cur = await conn.execute(DUE, {"secs": days * 86400, "limit": limit})
        due = [r[0] for r in await cur.fetchall()]
    for cid in due:
        await drop_rows(pool, cid)
    return due


async def drop_rows(pool: AsyncConnectionPool, cid: uuid.UUID) -> None:
    """Detach and drop one campaign's partition, then mark the campaign expired (each step
    safe to repeat: a detach interrupted half-way is finished first)."""
    name = partitions.name(cid)
    async with pool.connection() as conn:  # autocommit: CONCURRENTLY needs no transaction
        cur = await conn.execute(
            "SELECT i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'message'::regclass AND c.relname = %s",
            (name,),
        )
        row = await cur.fetchone()
        if row is not None:
            await conn.execute(partitions.detach(cid, finalize=bool(row[0])))
        await conn.execute(partitions.drop(cid))
        await conn.execute(
            "UPDATE campaign SET expired_at = now(), updated_at = now() WHERE id = %s", (cid,)
        )
    log.info("campaign %s: message rows past retention dropped", cid)


async def run(ctx: OperatorContext) -> None:
    """Expire campaigns every ``retention_interval`` seconds (when ``retention_days`` > 0)."""
    days = ctx.settings.retention_days
    if not days:
        return
    while True:
        try:
            while len(await expire(ctx.pool, days)) == 100:
                pass
        except Exception:
            log.exception("retention sweep failed")
        await asyncio.sleep(ctx.settings.retention_interval)
