"""Redis-side helpers shared by the operator and the workers.

Keys follow BullMQ's layout: ``<prefix>:<queue>:<jobId>`` holds a job hash and
``<prefix>:<queue>:<state>`` its state sets.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

ALIVE_KEY = "notifq:alive"
"""Marker the operator keeps in Redis; when it vanishes Redis lost its data."""


def queue_opts(redis_url: str, prefix: str) -> dict[str, Any]:
    """Options for a bullmq ``Queue`` or ``Worker``."""
    return {"connection": redis_url, "prefix": prefix}


def job_key(prefix: str, queue: str, job_id: str) -> str:
    return f"{prefix}:{queue}:{job_id}"


def state_key(prefix: str, queue: str, state: str) -> str:
    return f"{prefix}:{queue}:{state}"


def alive_key(prefix: str) -> str:
    return f"{prefix}:{ALIVE_KEY}"


def quota_status_key(prefix: str, campaign_id: object) -> str:
    """Hash where workers leave a campaign's quota status (provider rate, share, waiting)
    and the operator reads it for the resource status."""
    return f"{prefix}:quota:status:{campaign_id}"


def failover_key(prefix: str, campaign_id: object) -> str:
    """Hash where workers count a campaign's messages sent through a secondary provider
    (field ``primary>secondary``) and the operator reads them for ``status.failover``."""
    return f"{prefix}:failover:{campaign_id}"


def share_key(prefix: str, namespace: str) -> str:
    """Hash the operator writes from a namespace's NotifqPolicy: provider (or ``*``) ->
    the namespace's share of that provider's quota (a fraction); the workers' quota
    scheduler reads it. Absent: no share limit."""
    return f"{prefix}:policy:share:{namespace}"


async def backlog(redis: Redis, prefix: str, queue: str) -> dict[str, int]:
    """Jobs per state: waiting (ready to work), active, delayed (backoff), failed."""
    pipe = redis.pipeline(transaction=False)
    pipe.llen(state_key(prefix, queue, "wait"))
    pipe.zcard(state_key(prefix, queue, "prioritized"))
    pipe.llen(state_key(prefix, queue, "active"))
    pipe.zcard(state_key(prefix, queue, "delayed"))
    pipe.zcard(state_key(prefix, queue, "failed"))
    wait, prio, active, delayed, failed = await pipe.execute()
    return {
        "waiting": int(wait) + int(prio),
        "active": int(active),
        "delayed": int(delayed),
        "failed": int(failed),
    }
