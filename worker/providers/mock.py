"""The mock provider, for load tests and demos.

Latency and failure rate are configurable (the reference service used 200 ms
and 20 %). Every accepted send is appended to a per-process log file when
``mock_log_dir`` is set, with the time the send arrived, written with one
``write(2)`` per batch so that it survives a ``kill -9``: the fault tests count
duplicates and losses from it, the quota benchmark bursts.

With ``mock_quota`` N it models one provider account with a quota: a send that
finds N others accepted in the sliding second before it is answered
``Throttling`` (counted in a Redis sorted set shared by every worker process,
on Redis's clock), and logged in ``throttled-<pid>.log``.

Test hooks, by recipient local part: ``reject*`` is refused permanently,
``fail*`` always fails transiently. While ``mock_outage_file`` exists every
send fails with ``ServiceUnavailable`` (a provider outage).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from redis.asyncio import Redis

from notifq.core.settings import WorkerSettings
from notifq.worker.providers.base import Outbound, Outcome

_QUOTA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1000)
local room = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
local n = math.max(0, math.min(room, tonumber(ARGV[2])))
if n > 0 then
  local first = redis.call('INCRBY', KEYS[2], n) - n
  local args = {}
  for i = 1, n do
    table.insert(args, now)
    table.insert(args, first + i)
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
redis.call('PEXPIRE', KEYS[1], 5000)
return {n, tostring(now)}
"""


THROTTLED = "Throttling: Maximum sending rate exceeded."


class MockProvider:
    name = "mock"

    def __init__(self, settings: WorkerSettings) -> None:
        self.latency = settings.mock_latency_ms / 1000.0
        self.failure_rate = settings.mock_failure_rate
        self.outage = Path(settings.mock_outage_file) if settings.mock_outage_file else None
        self.quota = settings.mock_quota
        self._redis: Redis | None = None
        self._quota_keys = [
            f"{settings.queue_prefix}:mock:quota",
            f"{settings.queue_prefix}:mock:quota-seq",
        ]
        self._fd: int | None = None
        self._throttle_fd: int | None = None
        if settings.mock_log_dir:
            Path(settings.mock_log_dir).mkdir(parents=True, exist_ok=True)
            path = Path(settings.mock_log_dir) / f"deliveries-{os.getpid()}.log"
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            path = Path(settings.mock_log_dir) / f"throttled-{os.getpid()}.log"
            self._throttle_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self.quota:
            self._redis = Redis.from_url(settings.redis_url)
            self._admit = self._redis.register_script(_QUOTA)
        self._rand = random.random

    async def _admitted(self, n: int) -> tuple[int, float]:
        """How many of ``n`` sends arriving now fit the quota, and the arrival time."""
        if not self.quota:
            return n, time.time()
        ok, now = await self._admit(keys=self._quota_keys, args=[self.quota, n])
        return int(ok), float(now) / 1000

    async def send_many(self, channel: str, messages: list[Outbound]) -> list[Outcome]:
        admitted, arrived = await self._admitted(len(messages))
        if admitted < len(messages):
            self._log(self._throttle_fd, arrived, [m.recipient for m in messages[admitted:]])
        if self.latency:
            await asyncio.sleep(self.latency)  # the batch is in flight concurrently
        if self.outage is not None and self.outage.exists():
            return [
                Outcome(m.seq, "transient", "ServiceUnavailable: mock provider outage", down=True)
                for m in messages
            ]
        out: list[Outcome] = []
        accepted: list[str] = []
        rate, rand = self.failure_rate, self._rand
        for i, m in enumerate(messages):
            local = m.recipient[:6]
            if i >= admitted:
                out.append(Outcome(m.seq, "throttled", THROTTLED))
            elif local.startswith("reject"):
                out.append(Outcome(m.seq, "permanent", "MessageRejected: mock rejects recipient"))
            elif local.startswith("fail") or (rate and rand() < rate):
                out.append(Outcome(m.seq, "transient", "ServiceUnavailable: mock failure"))
            else:
                out.append(Outcome(m.seq, "sent"))
                accepted.append(m.recipient)
        self._log(self._fd, arrived, accepted)
        return out

    @staticmethod
    def _log(fd: int | None, stamp: float, recipients: list[str]) -> None:
        if fd is not None and recipients:
            os.write(fd, "".join(f"{stamp:.3f}\t{r}\n" for r in recipients).encode())

    async def close(self) -> None:
        for fd in (self._fd, self._throttle_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._throttle_fd = None
        if self._redis is not None:
            await self._redis.aclose()
