"""A campaign's provider failover, as the workers counted it in Redis, for the status.

Workers count the messages a secondary provider accepted because the primary was
down (field ``primary>secondary``, :func:`notifq.core.queue.failover_key`); the
status shows them as ``status.failover`` and :mod:`.events` posts a
``ProviderFailover`` Event when a pair first appears. The rows' ``provider`` is the
record; these counts are a summary that a lost Redis may lose.
"""

from __future__ import annotations

import logging
import uuid

from redis.asyncio import Redis

from notifq.core.queue import failover_key

log = logging.getLogger(__name__)


async def read(redis: Redis, prefix: str, cid: uuid.UUID) -> dict[str, int] | None:
    """``primary>secondary`` -> messages, or None when Redis did not answer."""
    try:
        raw = await redis.hgetall(failover_key(prefix, cid))
    except Exception as exc:  # Redis trouble must not stop the status
        log.debug("failover counts of %s not read: %s", cid, exc)
        return None
    return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}
