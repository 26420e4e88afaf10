"""Processing of one chunk job: render, rate-limit, send, record.

A chunk's pending rows are split into write batches that run concurrently
(bounded per process by ``max_in_flight``); each batch takes its rate-limit
tokens in bulk, goes to its provider in one call and is recorded with one
UPDATE. Transient failures stay ``pending`` with ``attempts`` counted; if any
remain, the job raises so BullMQ retries it with exponential backoff, and the
retry sends only what is still pending. On the job's last attempt, or when a
message has used all its attempts, a transient failure becomes final.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from bullmq import UnrecoverableError
from psycopg_pool import AsyncConnectionPool

from notifq.core import recipients as rcpt
from notifq.core.jobs import ChunkJob
from notifq.core.renderpool import Limits, RenderPool
from notifq.core.settings import WorkerSettings
from notifq.worker import metrics, store
from notifq.worker.providers import Outcome, Provider
from notifq.worker.ratelimit import SharedRateLimiter
from notifq.worker.render import render_rows

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """Some messages of the chunk failed transiently; BullMQ retries the job with backoff."""


class ChunkProcessor:
    def __init__(
        self,
        settings: WorkerSettings,
        pool: AsyncConnectionPool,
        providers: dict[str, Provider],
        limiter: SharedRateLimiter,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.providers = providers
        self.limiter = limiter
        self.renderer = RenderPool(Limits.from_settings(settings))
        self.campaigns = store.CampaignCache(pool)
        self.slots = asyncio.Semaphore(max(1, settings.max_in_flight // settings.write_batch))
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def drained(self, quiet: float = 0.3) -> None:
        """Wait until no job is being processed (and none started for ``quiet`` seconds)."""
        while True:
            await self._idle.wait()
            await asyncio.sleep(quiet)
            if self._idle.is_set():
                return

    async def __call__(self, job: Any, token: str) -> dict[str, int]:
        try:
            chunk = ChunkJob.from_data(job.data)
        except Exception as exc:
            metrics.BAD_JOBS.inc()
            log.error("job %s has an unreadable payload, failed for good: %s", job.id, exc)
            raise UnrecoverableError(f"unreadable job payload: {exc}") from exc
        max_job_attempts = int(job.opts.get("attempts", 1))
        last_attempt = job.attemptsMade + 1 >= max_job_attempts
        self.active += 1
        self._idle.clear()
        try:
            result = await self.process(chunk, last_attempt=last_attempt)
        finally:
            self.active -= 1
            if self.active == 0:
                self._idle.set()
        metrics.JOBS.labels("retry" if result["retry"] else "done").inc()
        if result["retry"]:
            raise RetryLater(
                f"{result['retry']} message(s) of chunk {chunk.chunk} failed "
                "transiently; retrying with backoff"
            )
        return result

    async def process(self, chunk: ChunkJob, *, last_attempt: bool) -> dict[str, int]:
        """Deliver the chunk's pending messages once; counts of what happened."""
        totals = {"sent": 0, "failed": 0, "retry": 0, "skipped": 0}
        camp = await self.campaigns.get(chunk.campaign_id)
        if camp is None or camp.state != "active":
            totals["skipped"] = chunk.end - chunk.start
            return totals
        rows = await store.fetch_pending(self.pool, chunk.campaign_id, chunk.start, chunk.end)
        batches: dict[str, list[store.PendingRow]] = defaultdict(list)
        for row in rows:
            batches[rcpt.route(camp.channel, camp.provider, row.recipient)].append(row)
        size = self.settings.write_batch
        tasks = [
            self._send_batch(camp, provider, group[i : i + size], last_attempt)
            for provider, group in batches.items()
            for i in range(0, len(group), size)
        ]
        for counts in await asyncio.gather(*tasks):
            for k, v in counts.items():
                totals[k] += v
        return totals

    async def _send_batch(
        self,
        camp: store.CampaignInfo,
        provider_name: str,
        rows: list[store.PendingRow],
        last_attempt: bool,
    ) -> dict[str, int]:
        # rendering needs no send slot: a slow template must not hold one
        outbound, render_failures = await render_rows(self.renderer, camp, rows)
        async with self.slots:
            fresh = await self.campaigns.get(camp.id)
            if fresh is None or fresh.state != "active":
                return {"skipped": len(rows)}
            provider = self.providers.get(provider_name)
            if provider is None:
                writes = [
                    store.Write(
                        r.seq, "failed", f"unknown provider {provider_name!r}", provider_name, None
                    )
                    for r in rows
                ]
                await store.write(self.pool, camp.id, writes, counter=self.settings.naive_counter)
                return {"failed": len(rows)}
            waited = await self.limiter.acquire(
                f"provider:{provider_name}", self.settings.rate_limit(provider_name), len(outbound)
            )
            if camp.rate_limit:
                waited += await self.limiter.acquire(
                    f"campaign:{camp.id}", camp.rate_limit, len(outbound)
                )
            if waited:
                metrics.RATE_WAIT_SECONDS.labels(provider_name).inc(waited)
            if not await self.campaigns.is_active(camp.id):  # cancelled while waiting
                return {"skipped": len(rows)}
            metrics.IN_FLIGHT.inc(len(outbound))
            t0 = time.perf_counter()
            try:
                outcomes = await provider.send_many(camp.channel, outbound) if outbound else []
            finally:
                metrics.IN_FLIGHT.dec(len(outbound))
            metrics.SEND_SECONDS.labels(provider_name).observe(time.perf_counter() - t0)
            writes, counts = self._decide(camp, provider_name, rows, outcomes, last_attempt)
            writes.extend(render_failures)
            counts["failed"] += len(render_failures)
            await store.write(self.pool, camp.id, writes, counter=self.settings.naive_counter)
            return counts

    @staticmethod
    def _decide(
        camp: store.CampaignInfo,
        provider: str,
        rows: list[store.PendingRow],
        outcomes: list[Outcome],
        last_attempt: bool,
    ) -> tuple[list[store.Write], dict[str, int]]:
        attempts = {r.seq: r.attempts for r in rows}
        writes: list[store.Write] = []
        sent = failed = retry = 0
        for o in outcomes:
            if o.result == "sent":
                writes.append(store.Write(o.seq, "sent", None, provider, o.provider_id))
                sent += 1
            elif (
                o.result == "permanent" or last_attempt or attempts[o.seq] + 1 >= camp.max_attempts
            ):
                writes.append(store.Write(o.seq, "failed", o.error, provider, None))
                failed += 1
            else:
                writes.append(store.Write(o.seq, "pending", o.error, provider, None))
                retry += 1
        labels = metrics.MESSAGES.labels
        if sent:
            labels(provider, camp.channel, "sent").inc(sent)
        if failed:
            labels(provider, camp.channel, "failed").inc(failed)
        if retry:
            labels(provider, camp.channel, "retry").inc(retry)
        return writes, {"sent": sent, "failed": failed, "retry": retry}
