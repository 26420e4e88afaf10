"""The worker's lease in Postgres: while it is renewed, the worker's claims stand.

Every live worker process keeps one ``worker_lease`` row, renewed every quarter
of ``worker_lease_seconds``. Rows claimed by a worker whose lease ran out (it
died, or its event loop stalled longer than that) may be claimed and sent by
another worker. The worker itself checks, before every send, that its lease is
still valid by its own clock; after a stall it sends nothing until the lease is
renewed, so a stalled worker and its replacement never send the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)


class WorkerLease:
    def __init__(self, pool: AsyncConnectionPool, seconds: float) -> None:
        self.pool = pool
        self.seconds = seconds
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._valid_until = 0.0
        self._epoch = 0
        self._task: asyncio.Task[None] | None = None

    def valid(self, since: int | None = None) -> bool:
        """Whether this worker's claims are certainly still its own (by its own clock);
        with ``since`` (an :attr:`epoch` read when a claim was made), also that the lease
        has not lapsed since then: a claim made before a lapse may have been taken over,
        even once the lease is renewed again."""
        if since is not None and since != self.epoch:
            return False
        return time.monotonic() < self._valid_until

    @property
    def epoch(self) -> int:
        """Changes every time the lease is renewed after it had lapsed."""
        return self._epoch

    @property
    def grace(self) -> float:
        """Seconds every worker gets to renew its lease after a database restart."""
        return 1.5 * self.seconds

    async def renew(self) -> None:
        started = time.monotonic()
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO worker_lease (id, expires_at) "
                "VALUES (%s, now() + make_interval(secs => %s)) "
                "ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at",
                (self.id, self.seconds),
            )
        if time.monotonic() >= self._valid_until:
            self._epoch += 1  # it had lapsed: claims made before may be another's now
        # valid by our clock until a quarter lease before the database's expiry
        self._valid_until = started + 0.75 * self.seconds

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 4)
            try:
                await self.renew()
            except Exception as exc:
                log.warning("worker lease not renewed: %s", exc)

    async def start(self) -> None:
        await self.renew()
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM worker_lease WHERE expires_at < now() - interval '1 day'"
            )
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with self.pool.connection() as conn:
                await conn.execute("DELETE FROM worker_lease WHERE id = %s", (self.id,))
