"""Job removal against a real Redis: removed, missing and a Redis error told apart.

(A lost connection is not an error here: bullmq's client retries until Redis is back,
so a reconcile waits for Redis instead of reporting nothing withdrawn.)"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import testbed
from bullmq import Queue, Worker

from notifq.core import jobs
from notifq.core.errors import RedisUnavailable
from notifq.core.queue import queue_opts, state_key
from notifq.operator import enqueue


async def test_remove_counts_removed_jobs_and_raises_on_redis_errors(tmp_path: Path) -> None:
    redis = testbed.Redis(tmp_path / "redis").start()
    queue = Queue("q", queue_opts(redis.url, f"t{uuid.uuid4().hex[:6]}"))
    try:
        cid = uuid.uuid4()
        chunk_jobs = jobs.chunks(cid, 1500, 500)
        await enqueue.add(queue, chunk_jobs, jobs.job_options(4, 1000))
        ids = [j.job_id for j in chunk_jobs]
        assert await enqueue.remove(queue, ids[:2]) == 2
        assert await enqueue.remove(queue, ids) == 1  # two are gone already
        # a job key that is not a job hash: Redis answers an error, which must not read as
        # "nothing to withdraw"
        await queue.client.set(queue.toKey(ids[0]), "not a job")
        with pytest.raises(RedisUnavailable):
            await enqueue.remove(queue, ids)
    finally:
        redis.stop()
        await queue.close()


async def test_a_retry_gives_failing_chunks_a_fresh_replacement_budget(tmp_path: Path) -> None:
    redis = testbed.Redis(tmp_path / "redis").start()
    prefix = f"t{uuid.uuid4().hex[:6]}"
    queue = Queue("q", queue_opts(redis.url, prefix))

    async def fail(job: Any, token: str) -> None:
        raise RuntimeError("broken template")

    worker = Worker("q", fail, {**queue_opts(redis.url, prefix), "autorun": False})
    run = asyncio.ensure_future(worker.run())
    cid = uuid.uuid4()
    chunk = jobs.chunks(cid, 500, 500)
    failed_key = state_key(prefix, "q", "failed")

    async def fail_once() -> None:
        await enqueue.add(queue, chunk, jobs.job_options(1, 100))
        for _ in range(200):
            if await queue.client.zscore(failed_key, chunk[0].job_id) is not None:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the job did not fail")

    async def sweep() -> enqueue.Missing:
        return await enqueue.missing(queue.client, queue, prefix, "q", cid, [0], 500, 500, 2)

    try:
        for _ in range(2):  # replaced twice ...
            await fail_once()
            assert [j.chunk for j in (await sweep()).chunks] == [0]
        await fail_once()  # ... then given up
        found = await sweep()
        assert found.chunks == [] and "broken template" in found.given_up[0]
        await enqueue.forget_replacements(queue.client, prefix, "q", cid)  # retry-failed
        await fail_once()
        found = await sweep()
        assert [j.chunk for j in found.chunks] == [0] and found.given_up == {}
    finally:
        await worker.close(force=True)
        run.cancel()
        await queue.close()
        redis.stop()
