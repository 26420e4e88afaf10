"""Redis side of the operator: add, remove and re-add chunk jobs.

Jobs are derived from rows: a chunk needs a job while it holds pending
messages. Ids are deterministic, so adding is idempotent and re-adding after
Redis lost its data (or after suspend) is always safe.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from notifq.core import jobs
from notifq.core.errors import RedisUnavailable
from notifq.core.queue import job_key, state_key

log = logging.getLogger(__name__)

ADD_BATCH = 1000


async def add(queue: Any, chunk_jobs: Sequence[jobs.ChunkJob], opts: dict[str, Any]) -> None:
    """``addBulk`` the chunks, 1,000 per call; existing ids are left alone by BullMQ."""
    for i in range(0, len(chunk_jobs), ADD_BATCH):
        batch = chunk_jobs[i : i + ADD_BATCH]
        await queue.addBulk(
            [
                {"name": jobs.JOB_NAME, "data": j.to_data(), "opts": {**opts, "jobId": j.job_id}}
                for j in batch
            ]
        )


async def remove(queue: Any, ids: Sequence[str]) -> int:
    """Remove waiting/delayed jobs by id; active (locked) and missing ones count 0.

    An error answered by Redis raises :class:`RedisUnavailable` (the caller's reconcile is
    retried) instead of reporting that nothing was queued; a lost connection is retried by
    bullmq's client until Redis is back.
    """
    removed = 0
    try:
        # bullmq's removeJob answers 1 for a missing job too: look first
        pipe = queue.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.exists(queue.toKey(job_id))
        present = [job_id for job_id, n in zip(ids, await pipe.execute(), strict=True) if n]
        for job_id in present:
            removed += int(bool(await queue.remove(job_id)))
    except RedisError as exc:
        raise RedisUnavailable(f"Redis: removing jobs failed: {exc}") from exc
    return removed


async def ensure(
    redis: Redis,
    queue: Any,
    prefix: str,
    queue_name: str,
    cid: uuid.UUID,
    chunk_numbers: Sequence[int],
    total: int,
    chunk_size: int,
    opts: dict[str, Any],
) -> int:
    """Give every listed chunk a live job. Returns how many were (re)added."""
    if not chunk_numbers:
        return 0
    ids = [jobs.job_id(cid, k) for k in chunk_numbers]
    pipe = redis.pipeline(transaction=False)
    failed_set = state_key(prefix, queue_name, "failed")
    for job_id in ids:
        pipe.exists(job_key(prefix, queue_name, job_id))
        pipe.zscore(failed_set, job_id)
    res = await pipe.execute()
    missing: list[jobs.ChunkJob] = []
    dead: list[str] = []
    for i, k in enumerate(chunk_numbers):
        exists, failed_score = res[2 * i], res[2 * i + 1]
        if failed_score is not None:
            dead.append(ids[i])
        if not exists or failed_score is not None:
            missing.append(jobs.chunk_of(cid, k, total, chunk_size))
    if dead:
        await remove(queue, dead)
    if missing:
        await add(queue, missing, opts)
        log.info(
            "campaign %s: re-enqueued %d chunk(s) (%d failed jobs replaced)",
            cid,
            len(missing),
            len(dead),
        )
    return len(missing)
