"""One chunk processed twice at once by the same worker process: each message is sent once.

BullMQ delivers a job at least once: a job whose lock was not renewed in time (the
worker's event loop stalled past the lock, or a renewal failed) is moved back to wait
and may be taken again, by another worker or by the same one, while its first run is
still sending. The claims in Postgres must make that harmless. Here two runs of one
chunk go through one real ``ChunkProcessor`` (real Postgres, real Redis, the mock
provider logging each accepted send) side by side, in lockstep.

And the other side of the same rule: rows a slice of this process claimed and then
left (an error between claim and write) are claimed again by its next run, at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import testbed
from harness import campaign_row
from redis.asyncio import Redis

from notifq.core.db import open_pool
from notifq.core.jobs import chunk_of
from notifq.core.settings import WorkerSettings
from notifq.operator import storing
from notifq.operator.sources import InlineRecipients
from notifq.worker.ceilings import Ceilings
from notifq.worker.lease import WorkerLease
from notifq.worker.outbox import Outbox
from notifq.worker.processor import ChunkProcessor
from notifq.worker.providers.base import Outbound, Outcome
from notifq.worker.providers.mock import MockProvider
from notifq.worker.quota import QuotaScheduler

N = 400
RUNS = 4


class FailsOnce(MockProvider):
    """The mock, but its first batch raises (a bug, an unexpected library error)."""

    failed = False

    async def send_many(self, channel: str, messages: list[Outbound]) -> list[Outcome]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("unexpected")
        return await super().send_many(channel, messages)


@asynccontextmanager
async def worker(
    database_url: str, redis_url: str, log_dir: Path, mock: type[MockProvider] = MockProvider
) -> AsyncIterator[tuple[ChunkProcessor, Any]]:
    """One worker process's ChunkProcessor, and the pool it writes with."""
    settings = WorkerSettings(
        database_url=database_url,
        redis_url=redis_url,
        queue_prefix=f"t{uuid.uuid4().hex[:8]}",
        mock_latency_ms=0,
        mock_failure_rate=0,
        mock_log_dir=str(log_dir),
        write_batch=10,
    )
    pool = await open_pool(database_url, max_size=3)
    redis = Redis.from_url(redis_url)
    scheduler = QuotaScheduler(
        redis, settings.queue_prefix, burst=4, headroom=0.02, tolerance_ms=10
    )
    providers = {"mock": mock(settings)}
    lease = WorkerLease(pool, 10)
    await lease.start()
    try:
        yield (
            ChunkProcessor(
                settings,
                pool,
                providers,  # type: ignore[arg-type]
                scheduler,
                Ceilings(settings, providers, scheduler),  # type: ignore[arg-type]
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


async def store_campaign(pool: Any, n: int) -> uuid.UUID:
    cid = uuid.uuid4()
    row = dataclasses.replace(campaign_row(cid, "mock"), chunk_size=n)
    people = InlineRecipients([f"u{i}@example.com" for i in range(n)])
    await storing.materialize(pool, row, people, state="active")
    return cid


async def statuses(pool: Any, cid: uuid.UUID) -> dict[str, int]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, count(*) FROM message WHERE campaign_id = %s GROUP BY 1", (cid,)
        )
        return dict(await cur.fetchall())


def sends(log_dir: Path) -> Counter[str]:
    return Counter(
        line.split("\t")[1]
        for path in log_dir.glob("deliveries-*.log")
        for line in path.read_text().splitlines()
    )


async def test_two_runs_of_one_chunk_send_each_message_once(
    database_url: str, redis_server: testbed.Redis, tmp_path: Path
) -> None:
    async with worker(database_url, redis_server.url, tmp_path) as (processor, pool):
        cid = await store_campaign(pool, N)
        chunk = chunk_of(cid, 0, N, N)
        runs = await asyncio.gather(
            *(processor.process(chunk, chunk.start, last_attempt=False) for _ in range(RUNS))
        )
        # whatever one run did not send, another did: every row is sent, once
        assert await statuses(pool, cid) == {"sent": N}
        sent = sends(tmp_path)
        assert len(sent) == N
        twice = {r: n for r, n in sent.items() if n > 1}
        assert not twice, f"{len(twice)} recipients sent more than once"
        assert sum(r.counts["sent"] for r in runs) == N


async def test_rows_left_claimed_by_a_failed_slice_are_sent_by_the_next_run(
    database_url: str, redis_server: testbed.Redis, tmp_path: Path
) -> None:
    n = 30
    async with worker(database_url, redis_server.url, tmp_path, FailsOnce) as (processor, pool):
        cid = await store_campaign(pool, n)
        chunk = chunk_of(cid, 0, n, n)
        try:
            await processor.process(chunk, chunk.start, last_attempt=False)
            raise AssertionError("the first run should have raised")
        except RuntimeError:
            pass
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM message WHERE campaign_id = %s AND claim_token IS NOT NULL",
                (cid,),
            )
            assert await cur.fetchone() == (10,)  # the failed slice's rows: still claimed
        # the job's next run (BullMQ retries it) takes them at once, not after the lease
        done = await processor.process(chunk, chunk.start, last_attempt=False)
        assert done.counts["sent"] == n
        assert await statuses(pool, cid) == {"sent": n}
        assert sorted(sends(tmp_path).values()) == [1] * n
