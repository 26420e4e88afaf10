"""A worker process's pieces in the test's own event loop: a real ``ChunkProcessor`` over real
Postgres and Redis, with the mock provider (or a subclass of it: the provider is the outside
world) logging each accepted send, and the campaign helpers those tests share."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from harness import campaign_row
from redis.asyncio import Redis

from notifq.core.db import open_pool
from notifq.core.jobs import ChunkJob, chunk_of
from notifq.core.settings import WorkerSettings
from notifq.operator import storing
from notifq.operator.sources import InlineRecipients
from notifq.worker.ceilings import Ceilings
from notifq.worker.lease import WorkerLease
from notifq.worker.outbox import Outbox
from notifq.worker.processor import ChunkProcessor
from notifq.worker.providers.mock import MockProvider
from notifq.worker.quota import QuotaScheduler


def worker_settings(
    database_url: str, redis_url: str, log_dir: Path, **extra: Any
) -> WorkerSettings:
    """A worker's settings for these tests: its own queue prefix, a mock that answers at once
    and never fails, and small write batches."""
    return WorkerSettings(
        **{
            "database_url": database_url,
            "redis_url": redis_url,
            "queue_prefix": f"t{uuid.uuid4().hex[:8]}",
            "mock_latency_ms": 0,
            "mock_failure_rate": 0,
            "mock_log_dir": str(log_dir),
            "write_batch": 10,
            **extra,
        }
    )


@asynccontextmanager
async def worker(
    database_url: str,
    redis_url: str,
    log_dir: Path,
    mock: type[MockProvider] = MockProvider,
    **settings: Any,
) -> AsyncIterator[tuple[ChunkProcessor, Any]]:
    """One worker process's ChunkProcessor, and the pool it writes with."""
    config = worker_settings(database_url, redis_url, log_dir, **settings)
    pool = await open_pool(database_url, max_size=3)
    redis = Redis.from_url(redis_url)
    scheduler = QuotaScheduler(redis, config.queue_prefix, burst=4, headroom=0.02, tolerance_ms=10)
    providers = {"mock": mock(config)}
    lease = WorkerLease(pool, 10)
    await lease.start()
    try:
        yield (
            ChunkProcessor(
                config,
                pool,
                providers,  # type: ignore[arg-type]
                scheduler,
                Ceilings(config, providers, scheduler),  # type: ignore[arg-type]
                lease,
                Outbox(pool),
            ),
            pool,
        )
    finally:
        await lease.stop()
        for p in providers.values():
            await p.close()
        await redis.aclose()
        await pool.close()


async def store_campaign(pool: Any, n: int, **row: Any) -> uuid.UUID:
    """An active campaign of ``n`` messages through the mock, in one chunk."""
    cid = uuid.uuid4()
    fields = dataclasses.replace(campaign_row(cid, "mock"), chunk_size=n, **row)
    people = InlineRecipients([f"u{i}@example.com" for i in range(n)])
    await storing.materialize(pool, fields, people, state="active")
    return cid


async def one_chunk(pool: Any, n: int, **row: Any) -> ChunkJob:
    """An active campaign of ``n`` messages (:func:`store_campaign`), as its one chunk."""
    return chunk_of(await store_campaign(pool, n, **row), 0, n, n)


async def statuses(pool: Any, cid: uuid.UUID) -> dict[str, int]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, count(*) FROM message WHERE campaign_id = %s GROUP BY 1", (cid,)
        )
        return dict(await cur.fetchall())


async def claimed(pool: Any, cid: uuid.UUID) -> int:
    """The campaign's rows claimed now."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM message WHERE campaign_id = %s AND claim_token IS NOT NULL",
            (cid,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def sends(log_dir: Path) -> Counter[str]:
    """Accepted sends per recipient, from the mock's logs."""
    return Counter(
        line.split("\t")[1]
        for path in log_dir.glob("deliveries-*.log")
        for line in path.read_text().splitlines()
    )
