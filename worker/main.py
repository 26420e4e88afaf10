"""Entry point: ``notifq-worker`` consumes delivery jobs until SIGTERM/SIGINT.

On a signal it stops taking jobs, finishes the ones in flight (their status
writes included) and exits 0, well inside a 30 s grace period.

If BullMQ's consumer loop (``Worker.run()``, the only thing that takes jobs) ends
without being asked to, the process does not live on without it: that loop cancels
the jobs it had in flight as it ends, so their slices stay claimed, and a process
that kept its lease would hold those rows for the claim lease and consume nothing.
It logs the cause at ERROR, writes what its outbox holds, drops its lease (other
workers take its claims at once, as after a normal stop) and exits 1, so that
Kubernetes starts it again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from bullmq import Worker
from prometheus_client import start_http_server
from redis.asyncio import Redis

from notifq.core.db import open_pool
from notifq.core.queue import backlog, queue_opts
from notifq.core.settings import WorkerSettings, get_worker_settings
from notifq.core.startup import freeze_startup_objects
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


def consumer_end(task: asyncio.Task[Any]) -> str:
    """How the consumer loop's task ended, for the log."""
    if task.cancelled():
        return "cancelled (a CancelledError reached its loop)"
    exc = task.exception()
    if exc is not None:
        return f"{type(exc).__name__}: {exc}"
    return "returned (bullmq printed the error that ended it above)"


async def run(settings: WorkerSettings) -> int:
    """The worker until it is stopped; the process's exit status."""
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
            "autorun": False,  # its loop runs in a task of ours, watched below
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
    freeze_startup_objects()  # set up: full collections walk only what comes next
    depth = asyncio.create_task(_report_depth(settings, redis))
    consumer = asyncio.create_task(worker.run())
    stopped = asyncio.create_task(stop.wait())
    log.info(
        "worker started: queue=%s concurrency=%d max_in_flight=%d lease=%s",
        settings.queue_name,
        settings.concurrency,
        settings.max_in_flight,
        lease.id,
    )
    await asyncio.wait({consumer, stopped}, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if stop.is_set():
        log.info("signal received: finishing in-flight jobs")
        # Pause first: the run loop (and with it the renewal of job locks) keeps going
        # until our jobs are done. Closing at once stops lock renewal while jobs still
        # run, so another worker could take them over and send them again.
        await worker.pause(do_not_wait_active=True)
        await processor.drained()
    else:
        status = 1
        log.error(
            "the consumer loop ended without a stop: %s; its jobs in flight were cancelled. "
            "Leaving (exit 1) without the worker lease, so that other workers take this "
            "worker's claimed rows at once and Kubernetes starts it again",
            consumer_end(consumer),
            exc_info=None if consumer.cancelled() else consumer.exception(),
        )
    stopped.cancel()
    await outbox.close(wait=10)
    try:
        await worker.close()
    except Exception as exc:  # a consumer that died may leave it half closed
        log.warning("closing the queue worker: %s", exc)
    depth.cancel()
    consumer.cancel()  # ended with the close, or ended before
    await asyncio.gather(depth, consumer, return_exceptions=True)
    await ceilings.close()
    for p in providers.values():
        await p.close()
    await processor.renderer.close()
    await lease.stop()
    await redis.aclose()
    await pool.close()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    if status == 0:
        log.info("worker stopped cleanly")
    return status


def main() -> None:
    settings = get_worker_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    sys.exit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
