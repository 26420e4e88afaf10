"""The mock provider, for load tests and demos.

Latency and failure rate are configurable (the reference service used 200 ms
and 20 %). Every accepted send is appended to a per-process log file when
``mock_log_dir`` is set, written with one ``write(2)`` per batch so that it
survives a ``kill -9``: the fault tests count duplicates and losses from it.

Test hooks, by recipient local part: ``reject*`` is refused permanently,
``fail*`` always fails transiently. While ``mock_outage_file`` exists every
send is throttled (a provider outage).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from notifq.core.settings import WorkerSettings
from notifq.worker.providers.base import Outbound, Outcome


class MockProvider:
    name = "mock"

    def __init__(self, settings: WorkerSettings) -> None:
        self.latency = settings.mock_latency_ms / 1000.0
        self.failure_rate = settings.mock_failure_rate
        self.outage = Path(settings.mock_outage_file) if settings.mock_outage_file else None
        self._fd: int | None = None
        if settings.mock_log_dir:
            Path(settings.mock_log_dir).mkdir(parents=True, exist_ok=True)
            path = Path(settings.mock_log_dir) / f"deliveries-{os.getpid()}.log"
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._rand = random.random

    async def send_many(self, channel: str, messages: list[Outbound]) -> list[Outcome]:
        if self.latency:
            await asyncio.sleep(self.latency)  # the batch is in flight concurrently
        if self.outage is not None and self.outage.exists():
            return [
                Outcome(m.seq, "transient", "Throttling: mock provider outage") for m in messages
            ]
        out: list[Outcome] = []
        accepted: list[str] = []
        rate, rand = self.failure_rate, self._rand
        for m in messages:
            local = m.recipient[:6]
            if local.startswith("reject"):
                out.append(Outcome(m.seq, "permanent", "MessageRejected: mock rejects recipient"))
            elif local.startswith("fail") or (rate and rand() < rate):
                out.append(Outcome(m.seq, "transient", "ServiceUnavailable: mock failure"))
            else:
                out.append(Outcome(m.seq, "sent"))
                accepted.append(m.recipient)
        if self._fd is not None and accepted:
            stamp = f"{time.time():.3f}"
            os.write(self._fd, "".join(f"{stamp}\t{r}\n" for r in accepted).encode())
        return out

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
