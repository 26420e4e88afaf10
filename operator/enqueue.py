"""Redis side of the operator: add, remove and re-add chunk jobs.

Jobs are derived from rows: a chunk needs a job while it holds pending
messages and its campaign is active. Ids are deterministic, so adding is
idempotent and re-adding after Redis lost its data (or after suspend) is always
safe. Callers add jobs only under the campaign row's lock
(:func:`notifq.operator.store.locked_state`), one batch at a time.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from notifq.core import jobs
from notifq.core.errors import RedisUnavailable
from notifq.core.queue import job_key, state_key

log = logging.getLogger(__name__)

ADD_BATCH = 1000
REPLACED_TTL_SECONDS = 7 * 86400
"""How long the count of a campaign's replaced jobs is kept after its last change."""


def batches(chunk_jobs: Sequence[jobs.ChunkJob]) -> Iterator[Sequence[jobs.ChunkJob]]:
    """The chunks in ``addBulk`` batches of ``ADD_BATCH``."""
    for i in range(0, len(chunk_jobs), ADD_BATCH):
        yield chunk_jobs[i : i + ADD_BATCH]


async def add(queue: Any, batch: Sequence[jobs.ChunkJob], opts: dict[str, Any]) -> None:
    """``addBulk`` one batch of chunks; existing ids are left alone by BullMQ."""
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


@dataclass(frozen=True, slots=True)
class Missing:
    """What a sweep found: chunks to (re)add, and chunks given up with the reason why."""

    chunks: list[jobs.ChunkJob]
    given_up: dict[int, str]


def replaced_key(prefix: str, queue_name: str, cid: uuid.UUID) -> str:
    """Hash: chunk number -> how many times a failed job of it was replaced."""
    return f"{prefix}:{queue_name}:notifq-replaced:{cid}"


async def forget_replacements(redis: Redis, prefix: str, queue_name: str, cid: uuid.UUID) -> None:
    """A retry gives every chunk of the campaign a fresh replacement budget."""
    await redis.delete(replaced_key(prefix, queue_name, cid))


async def missing(
    redis: Redis,
    queue: Any,
    prefix: str,
    queue_name: str,
    cid: uuid.UUID,
    chunk_numbers: Sequence[int],
    total: int,
    chunk_size: int,
    max_replacements: int,
) -> Missing:
    """The listed chunks without a live job; failed jobs are removed and listed too.

    A chunk whose job failed (every attempt raised) is listed again up to
    ``max_replacements`` times; after that it is given up, so the same failing work is
    never re-added without bound: the caller fails its pending messages.
    """
    if not chunk_numbers:
        return Missing([], {})
    ids = [jobs.job_id(cid, k) for k in chunk_numbers]
    pipe = redis.pipeline(transaction=False)
    failed_set = state_key(prefix, queue_name, "failed")
    for job_id in ids:
        pipe.exists(job_key(prefix, queue_name, job_id))
        pipe.zscore(failed_set, job_id)
    res = await pipe.execute()
    out: list[jobs.ChunkJob] = []
    dead: dict[int, str] = {}
    for i, k in enumerate(chunk_numbers):
        exists, failed_score = res[2 * i], res[2 * i + 1]
        if failed_score is not None:
            dead[k] = ids[i]
        elif not exists:
            out.append(jobs.chunk_of(cid, k, total, chunk_size))
    given_up: dict[int, str] = {}
    if dead:
        counted = await _count_replacement(redis, prefix, queue_name, cid, dead)
        for k, (times, why) in counted.items():
            if times > max_replacements:
                given_up[k] = f"delivery job failed {times - 1} times, last: {why}"[:1000]
            else:
                out.append(jobs.chunk_of(cid, k, total, chunk_size))
        await remove(queue, list(dead.values()))
        log.info(
            "campaign %s: %d failed job(s) to replace, %d chunk(s) given up",
            cid,
            len(dead) - len(given_up),
            len(given_up),
        )
    out.sort(key=lambda j: j.chunk)
    return Missing(out, given_up)


async def _count_replacement(
    redis: Redis, prefix: str, queue_name: str, cid: uuid.UUID, dead: dict[int, str]
) -> dict[int, tuple[int, str]]:
    """Count one more failure of each dead chunk; (failures so far, last failed reason)."""
    key = replaced_key(prefix, queue_name, cid)
    pipe = redis.pipeline(transaction=False)
    for k, job_id in dead.items():
        pipe.hincrby(key, str(k), 1)
        pipe.hget(job_key(prefix, queue_name, job_id), "failedReason")
    pipe.expire(key, REPLACED_TTL_SECONDS)
    res = await pipe.execute()
    out: dict[int, tuple[int, str]] = {}
    for i, k in enumerate(dead):
        reason = res[2 * i + 1]
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        out[k] = (int(res[2 * i]), text)
    return out
