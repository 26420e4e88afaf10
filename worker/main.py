"""Entry point: ``notifq-worker`` consumes delivery jobs until SIGTERM/SIGINT.

On a signal it stops taking jobs, finishes the ones in flight (their status
writes included) and exits 0, well inside a 30 s grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from bullmq import Worker
from prometheus_client import start_http_server
from redis.asyncio import Redis

from notifq.core.db import open_pool
from notifq.core.queue import backlog, queue_opts
from notifq.core.settings import WorkerSettings, get_worker_settings
from notifq.worker import metrics
from notifq.worker.ceilings import Ceilings
from notifq.worker.lease import WorkerLease
from notifq.worker.outbox import Outbox
from notifq.worker.processor import ChunkProcessor
from notifq.worker.providers import build_providers
from notifq.worker.quota import QuotaScheduler

log = logging.getLogger("notifq.worker")


async def _report_depth(settings: WorkerSettings, redis: Redis) -> None:
    while True:
        try:
            for state, n in (
                await backlog(redis, settings.queue_prefix, settings.queue_name)
            ).items():
                metrics.QUEUE_DEPTH.labels(state).set(n)
        except Exception as exc:
            log.debug("queue depth unavailable: %s", exc)
        await asyncio.sleep(5)


def fractional_block_timeouts(worker: Worker) -> None:
    """Let the worker block on Redis for fractions of a second (Redis >= 6 accepts them).

    Python bullmq rounds its blocking wait up to whole seconds unless the
    connection declares ``canDoubleTimeout`` (Node BullMQ declares it for Redis
    >= 6); a job given back for 200 ms until its quota frees would then wait up
    to a second before a worker noticed it was due.
    """
    conn = worker.backend.blocking_connection or worker.backend.connection
    conn.capabilities = {**conn.capabilities, "canDoubleTimeout": True}


async def run(settings: WorkerSettings) -> None:
    # first of all: a SIGTERM while starting up (a rolling update, a scale-down) stops
    # the worker cleanly once it is up, instead of killing it on the default action
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await open_pool(
        settings.database_url, max_size=max(4, settings.concurrency + 2), custom_plans=True
    )
    providers = build_providers(settings)
    redis = Redis.from_url(settings.redis_url)
    scheduler = QuotaScheduler(
        redis,
        settings.queue_prefix,
        burst=settings.quota_burst,
        headroom=settings.quota_headroom,
        tolerance_ms=settings.quota_tolerance_ms,
        hold_ms=settings.quota_hold_ms,
    )
    ceilings = Ceilings(settings, providers, scheduler)
    lease = WorkerLease(pool, settings.worker_lease_seconds)
    await lease.start()
    outbox = Outbox(pool)
    processor = ChunkProcessor(settings, pool, providers, scheduler, ceilings, lease, outbox)
    worker = Worker(
        settings.queue_name,
        processor,
        {
            **queue_opts(settings.redis_url, settings.queue_prefix),
            "concurrency": settings.concurrency,
            "lockDuration": settings.lock_duration_ms,
            "stalledInterval": settings.stalled_interval_ms,
            "maxStalledCount": 5,
            "drainDelay": 1,
            "runRetryDelay": settings.reconnect_delay_ms,
        },
    )
    fractional_block_timeouts(worker)
    worker.on("failed", lambda job, err: log.info("job %s attempt failed: %s", job.id, err))
    worker.on("error", lambda err, *_: log.warning("worker error: %s", err))
    worker.on(
        "stalled",
        lambda job_id, *_: log.warning(
            "job %s stalled (its lock ran out while it ran): back to wait, it runs again",
            job_id,
        ),
    )
    depth = asyncio.create_task(_report_depth(settings, redis))
    log.info(
        "worker started: queue=%s concurrency=%d max_in_flight=%d lease=%s",
        settings.queue_name,
        settings.concurrency,
        settings.max_in_flight,
        lease.id,
    )
    await stop.wait()
    log.info("signal received: finishing in-flight jobs")
    # Pause first: the run loop (and with it the renewal of job locks) keeps going
    # until our jobs are done. Closing at once stops lock renewal while jobs still
    # run, so another worker could take them over and send them again.
    await worker.pause(do_not_wait_active=True)
    await processor.drained()
    await outbox.close(wait=10)
    await worker.close()
    depth.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await depth
    await ceilings.close()
    for p in providers.values():
        await p.close()
    await processor.renderer.close()
    await lease.stop()
    await redis.aclose()
    await pool.close()
    log.info("worker stopped cleanly")


def main() -> None:
    settings = get_worker_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
