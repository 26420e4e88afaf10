"""Outcomes the provider accepted but the database would not take in time.

A job retries its status write for ``status_write_retry_seconds``; after that it
leaves the outcome here and gives its job back. The outbox writes it as soon as
the database answers again, for as long as the worker lives. The rows stay
claimed by this worker meanwhile (its lease is renewed as soon as the database
is back, and every worker gets a grace period after a database restart), so no
other job sends them again. Only a worker that dies with outcomes here leaves
messages that will be sent twice: they are counted in the duplicate bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from notifq.worker import store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pending:
    cid: uuid.UUID
    token: str
    writes: Sequence[store.Write]


class Outbox:
    def __init__(self, pool: AsyncConnectionPool, interval: float = 2.0) -> None:
        self.pool = pool
        self.interval = interval
        self.items: list[Pending] = []
        self._task: asyncio.Task[None] | None = None

    def tokens(self) -> set[str]:
        """Claims held by outcomes not yet written."""
        return {p.token for p in self.items}

    def add(self, cid: uuid.UUID, token: str, writes: Sequence[store.Write]) -> None:
        log.warning("campaign %s: %d outcome(s) kept until the database is back", cid, len(writes))
        self.items.append(Pending(cid, token, writes))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_loop())

    async def flush(self) -> bool:
        """Write what it can; True when empty.

        While the database does not answer (:func:`store.transient`) the round stops and
        the item tried goes to the back of the line, so none waits behind one that keeps
        failing. An item the database refuses for good is dropped, its claim released
        (:func:`store.refused`). An item stays in the list while it is written: its token
        is still held (:meth:`tokens`).
        """
        while self.items:
            item = self.items[0]  # add() only appends: it stays first until removed here
            try:
                await store.write_once(self.pool, item.cid, item.token, item.writes)
            except Exception as exc:
                if store.transient(exc):
                    self.items.append(self.items.pop(0))
                    log.info("outbox: database still unavailable (%s)", exc)
                    return False
                await store.refused(self.pool, item.cid, item.token, item.writes, exc)
                self.items.pop(0)
                continue
            self.items.pop(0)
            log.info("outbox: wrote %d kept outcome(s) of %s", len(item.writes), item.cid)
        return True

    async def _flush_loop(self) -> None:
        while True:
            if await self.flush():
                return
            await asyncio.sleep(self.interval)

    async def close(self, wait: float) -> None:
        """Try to write what is left for up to ``wait`` seconds."""
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, wait)
        if self.items:
            log.error("outbox: %d outcome batch(es) could not be written", len(self.items))
