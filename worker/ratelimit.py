"""Rate limits shared by every worker, kept in Redis (the ``limits`` library).

A sliding-window counter per key (``provider:<name>`` or ``campaign:<id>``);
tokens are taken in bulk, one Redis round trip per batch, not per message.
"""

from __future__ import annotations

import asyncio
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter


def storage_uri(redis_url: str) -> str:
    """The ``limits`` storage URI for a ``redis://`` URL."""
    return "async+" + redis_url


class SharedRateLimiter:
    """Blocks until ``n`` sends are allowed under a per-second limit shared via Redis."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self._storage = RedisStorage(storage_uri(redis_url), key_prefix=f"{prefix}:rate")
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)

    async def acquire(self, key: str, per_second: int, n: int) -> float:
        """Take ``n`` tokens from ``key``'s bucket; returns seconds waited."""
        if per_second <= 0 or n <= 0:
            return 0.0
        item = RateLimitItemPerSecond(per_second)
        started = time.monotonic()
        got = 0
        while got < n:
            take = min(n - got, per_second)
            if await self._limiter.hit(item, key, cost=take):
                got += take
                continue
            stats = await self._limiter.get_window_stats(item, key)
            if stats.remaining > 0:
                take = min(take, stats.remaining)
                if await self._limiter.hit(item, key, cost=take):
                    got += take
                    continue
            await asyncio.sleep(min(1.0, max(0.02, stats.reset_time - time.time())))
        return time.monotonic() - started
