"""Redis side of the operator: add, remove and re-add chunk jobs.

Jobs are derived from rows: a chunk needs a job while it holds pending
messages. Ids are deterministic, so adding is idempotent and re-adding after
Redis lost its data (or after suspend) is always safe.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from notifq.core import jobs
from notifq.core.queue import job_key, state_key

log = logging.getLogger(__name__)

ADD_BATCH = 1000
REPLACED_TTL_SECONDS = 7 * 86400
"""How long the count of a campaign's replaced jobs is kept after its last change."""


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
    """Remove waiting/delayed jobs by id; active (locked) ones finish on their own."""
    removed = 0
    for job_id in ids:
        try:
            removed += int(bool(await queue.remove(job_id)))
        except Exception as exc:
            log.debug("job %s not removed: %s", job_id, exc)
    return removed


@dataclass(frozen=True, slots=True)
class Ensured:
    """What a sweep did: chunks (re)added, and chunks given up with the reason why."""

    added: int
    given_up: dict[int, str]


def replaced_key(prefix: str, queue_name: str, cid: uuid.UUID) -> str:
    """Hash: chunk number -> how many times a failed job of it was replaced."""
    return f"{prefix}:{queue_name}:notifq-replaced:{cid}"


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
    max_replacements: int,
) -> Ensured:
    """Give every listed chunk a live job.

    A chunk whose job failed (every attempt raised) gets a fresh job up to
    ``max_replacements`` times; after that it is given up, so the same failing
    work is never re-added without bound: the caller fails its pending messages.
    """
    if not chunk_numbers:
        return Ensured(0, {})
    ids = [jobs.job_id(cid, k) for k in chunk_numbers]
    pipe = redis.pipeline(transaction=False)
    failed_set = state_key(prefix, queue_name, "failed")
    for job_id in ids:
        pipe.exists(job_key(prefix, queue_name, job_id))
        pipe.zscore(failed_set, job_id)
    res = await pipe.execute()
    missing: list[jobs.ChunkJob] = []
    dead: dict[int, str] = {}
    for i, k in enumerate(chunk_numbers):
        exists, failed_score = res[2 * i], res[2 * i + 1]
        if failed_score is not None:
            dead[k] = ids[i]
        elif not exists:
            missing.append(jobs.chunk_of(cid, k, total, chunk_size))
    given_up: dict[int, str] = {}
    if dead:
        counted = await _count_replacement(redis, prefix, queue_name, cid, dead)
        for k, (times, why) in counted.items():
            if times > max_replacements:
                given_up[k] = f"delivery job failed {times - 1} times, last: {why}"[:1000]
            else:
                missing.append(jobs.chunk_of(cid, k, total, chunk_size))
        await remove(queue, list(dead.values()))
    if missing:
        missing.sort(key=lambda j: j.chunk)
        await add(queue, missing, opts)
        log.info(
            "campaign %s: re-enqueued %d chunk(s) (%d failed jobs replaced)",
            cid,
            len(missing),
            len(dead) - len(given_up),
        )
    if given_up:
        log.warning(
            "campaign %s: gave up %d chunk(s) whose jobs failed %d times",
            cid,
            len(given_up),
            max_replacements + 1,
        )
    return Ensured(len(missing), given_up)


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
