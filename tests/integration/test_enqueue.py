"""Job removal against a real Redis: removed, missing and a Redis error told apart.

(A lost connection is not an error here: bullmq's client retries until Redis is back,
so a reconcile waits for Redis instead of reporting nothing withdrawn.)"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import testbed
from bullmq import Queue

from notifq.core import jobs
from notifq.core.errors import RedisUnavailable
from notifq.core.queue import queue_opts
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
