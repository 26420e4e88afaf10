"""A worker whose consumer loop ended by itself leaves: its claims free at once, exit non-zero.

BullMQ's ``Worker.run()`` is the only thing that takes jobs. It can end while the process
lives on: a ``CancelledError`` from a finished job's task escapes its loop (bullmq PR #4670),
or an unexpected error makes it print a traceback and return. Either way its ``finally``
cancels the jobs in flight, which leaves their slices claimed. A process that kept its
worker lease then would hold those rows for the claim lease (600 s) and never consume
again. Here the real worker entry point (``notifq.worker.main.run``) runs a chunk whose
first slice is in flight at the mock provider (it never answers), the consumer loop is made
to end, and the process must exit non-zero without its lease, so that another worker sends
the claimed rows at once, each message once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import pytest
import testbed
from bullmq import Queue, Worker
from workerbed import claimed, sends, statuses, store_campaign, worker, worker_settings

from notifq.core import jobs
from notifq.core.db import open_pool
from notifq.core.queue import queue_opts
from notifq.operator import enqueue
from notifq.worker import main

N = 30
HANG_GUARD = 60.0
"""Seconds after which a wait that should end is taken as hung (not a timing measure)."""


def consumer_task() -> asyncio.Task[Any]:
    """The task running bullmq's ``Worker.run()`` in this event loop."""
    return next(t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Worker.run")  # type: ignore[union-attr]


async def until_claimed(pool: Any, cid: Any, n: int) -> None:
    for _ in range(int(HANG_GUARD * 10)):
        if await claimed(pool, cid) == n:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no slice of {n} rows was claimed")


@pytest.mark.parametrize("how", ["loop cancelled", "job task cancelled"])
async def test_a_worker_whose_consumer_ended_exits_and_another_sends_its_claims(
    database_url: str,
    redis_server: testbed.Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    caplog.set_level(logging.INFO)
    settings = worker_settings(
        database_url, redis_server.url, tmp_path, mock_latency_ms=3_600_000, concurrency=1
    )
    pool = await open_pool(database_url, max_size=2)
    queue = Queue(settings.queue_name, queue_opts(settings.redis_url, settings.queue_prefix))
    cid = await store_campaign(pool, N)
    chunk = jobs.chunk_of(cid, 0, N, N)
    await enqueue.add(queue, [chunk], jobs.job_options(4, 1000))
    process = asyncio.create_task(main.run(settings))
    try:
        await until_claimed(pool, cid, settings.write_batch)  # the first slice is in flight
        consumer = consumer_task()
        if how == "loop cancelled":
            consumer.cancel()
        else:  # a job's task ends cancelled: the CancelledError escapes bullmq's loop
            bullmq_worker = consumer.get_coro().cr_frame.f_locals["self"]  # type: ignore[union-attr]
            assert isinstance(bullmq_worker, Worker)
            for task in bullmq_worker.processing:
                task.cancel()
        code = await asyncio.wait_for(process, HANG_GUARD)
    finally:
        if not process.done():  # the process did not notice: stop it as Kubernetes would
            signal.raise_signal(signal.SIGTERM)
            await asyncio.wait_for(process, HANG_GUARD)
        await queue.close()
    assert code == 1
    assert any(
        r.levelno == logging.ERROR and "consumer" in r.getMessage() for r in caplog.records
    ), "the consumer's end is logged at ERROR"
    # the slice in flight was cancelled with its rows claimed, and the lease behind the claim
    # is gone: no other worker waits for the claim lease
    assert await claimed(pool, cid) == settings.write_batch
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM worker_lease WHERE id IN "
            "(SELECT claim_owner FROM message WHERE campaign_id = %s)",
            (cid,),
        )
        assert await cur.fetchone() == (0,)
    await pool.close()
    async with worker(database_url, redis_server.url, tmp_path) as (other, other_pool):
        done = await other.process(chunk, chunk.start, last_attempt=False)
        assert done.counts["sent"] == N
        assert await statuses(other_pool, cid) == {"sent": N}
    assert sorted(sends(tmp_path).values()) == [1] * N
