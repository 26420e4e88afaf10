"""Level-based reconciliation of one Campaign: rows, jobs, intent and status.

Called every ``status_interval`` seconds per campaign (a Kopf timer). Each step
checks the world and does only what is missing, so a restart at any point
finishes the work without duplicates.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from notifq.core import jobs
from notifq.core.errors import InvalidCampaign
from notifq.core.templating import DEFAULT_BODY, DEFAULT_SUBJECT, MessageTemplate
from notifq.operator import enqueue, metrics, quota_status, sources, store
from notifq.operator import status as st
from notifq.operator.context import OperatorContext

log = logging.getLogger(__name__)

RETRY_ANNOTATION = "notifq.dev/retry-failed"


@dataclass(frozen=True)
class Resource:
    """The parts of a Campaign resource reconciliation reads."""

    uid: uuid.UUID
    namespace: str
    name: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    annotations: Mapping[str, str]


def campaign_row(res: Resource, chunk_size: int) -> store.CampaignRow:
    """The campaign row for a resource; checks its templates."""
    spec = res.spec
    subject = spec.get("subject") or DEFAULT_SUBJECT
    body = spec.get("body") or DEFAULT_BODY
    MessageTemplate(res.name, subject, body).check()
    retry = spec.get("retry") or {}
    return store.CampaignRow(
        id=res.uid,
        namespace=res.namespace,
        name=res.name,
        channel=spec.get("channel", "email"),
        provider=spec.get("provider", "auto"),
        subject=subject,
        body=body,
        max_attempts=int(retry.get("attempts", 4)),
        backoff_ms=int(retry.get("backoffMs", 1000)),
        chunk_size=chunk_size,
        rate_limit=spec.get("rateLimit"),
    )


def desired_state(spec: Mapping[str, Any]) -> str:
    if spec.get("cancel"):
        return "cancelled"
    return "suspended" if spec.get("suspend") else "active"


async def reconcile(ctx: OperatorContext, res: Resource) -> dict[str, Any] | None:
    """Bring rows and jobs in line with the resource; the status to patch, or None."""
    old = res.status
    token = res.annotations.get(RETRY_ANNOTATION)
    retry_asked = bool(token) and token != (old.get("retry") or {}).get("token")
    if (
        old.get("phase") in st.FINAL_PHASES
        and not retry_asked
        and old.get("observedGeneration") == res.generation
    ):
        return None

    stored = await store.get(ctx.pool, res.uid)
    if stored is None or stored.materialized_at is None:
        early = await _materialize(ctx, res)
        if early is not None:
            return early
        stored = await store.get(ctx.pool, res.uid)
        assert stored is not None

    opts = jobs.job_options(stored.max_attempts, stored.backoff_ms)
    desired = desired_state(res.spec)
    if stored.state not in (desired, "cancelled"):
        await _apply_intent(ctx, res.uid, desired, stored, opts)

    extra: dict[str, Any] = {}
    if retry_asked and desired == "active":
        retried = await store.retry_failed(ctx.pool, res.uid)
        await _sweep(ctx, res.uid, stored, opts, await ctx.redis_epoch())
        log.info(
            "campaign %s/%s: retry-failed %r re-queued %d message(s)",
            res.namespace,
            res.name,
            token,
            retried,
        )
        extra["retry"] = {"token": token, "retried": retried, "time": st.now_iso()}

    if desired == "active":
        epoch = await ctx.redis_epoch()
        if ctx.sweep_due(res.uid, epoch):
            await _sweep(ctx, res.uid, stored, opts, epoch)

    counts = await store.counts(ctx.pool, res.uid)
    phase = st.phase_for(res.spec, counts, stored.total)
    for s, n in counts.items():
        metrics.CAMPAIGN_MESSAGES.labels(res.namespace, res.name, s).set(n)
    start = (
        stored.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if stored.started_at
        else None
    )
    new = st.build(
        old=old,
        spec=res.spec,
        generation=res.generation,
        phase=phase,
        counts=counts,
        total=stored.total,
        message=st.describe(phase, counts, stored.total),
        start_time=start,
    )
    new.update(extra)
    await quota_status.annotate(
        ctx.redis, ctx.settings.queue_prefix, res.uid, old, new, res.generation
    )
    if phase not in st.FINAL_PHASES and old.get("completionTime"):
        new["completionTime"] = None  # merge patch: remove (a retry reopened the campaign)
    if (old.get("phase"), old.get("sent"), old.get("failed")) != (
        phase,
        counts["sent"],
        counts["failed"],
    ):
        await store.snapshot(
            ctx.pool, res.uid, phase, counts["sent"], counts["failed"], phase in st.FINAL_PHASES
        )
    return new if st.changed(old, new) else None


async def _materialize(ctx: OperatorContext, res: Resource) -> dict[str, Any] | None:
    """Store rows and enqueue jobs; a status to report instead when not (yet) possible."""
    spec, old = res.spec, res.status

    def early(phase: str, message: str) -> dict[str, Any]:
        return st.build(
            old=old,
            spec=spec,
            generation=res.generation,
            phase=phase,
            counts=None,
            total=0,
            message=message,
        )

    if spec.get("cancel"):
        return early("Cancelled", "cancelled before it started")
    when = st.parse_time(spec.get("scheduleAt"))
    if when is not None and when > datetime.now(UTC):
        return early("Scheduled", f"starts at {spec['scheduleAt']}")
    if old.get("phase") == "Failed" and old.get("observedGeneration") == res.generation:
        return None
    t0 = time.perf_counter()
    try:
        row = campaign_row(res, ctx.settings.chunk_size)
        src = await sources.resolve(
            spec,
            res.namespace,
            ctx.core_api,
            max_generated=ctx.settings.max_generated_recipients,
            max_inline=ctx.settings.max_inline_recipients,
        )
    except InvalidCampaign as exc:
        log.warning("campaign %s/%s is invalid: %s", res.namespace, res.name, exc)
        metrics.RECONCILES.labels("invalid").inc()
        return early("Failed", str(exc))
    total = await store.materialize(ctx.pool, row, src.entries, validate=src.validate)
    opts = jobs.job_options(row.max_attempts, row.backoff_ms)
    await enqueue.add(ctx.queue, jobs.chunks(res.uid, total, row.chunk_size), opts)
    ctx.mark_swept(res.uid, await ctx.redis_epoch())
    elapsed = time.perf_counter() - t0
    metrics.MATERIALIZE_SECONDS.observe(elapsed)
    log.info(
        "campaign %s/%s: stored and queued %d messages in %.2fs",
        res.namespace,
        res.name,
        total,
        elapsed,
    )
    return None


async def _apply_intent(
    ctx: OperatorContext,
    cid: uuid.UUID,
    desired: str,
    stored: store.Stored,
    opts: dict[str, Any],
) -> None:
    all_ids = [c.job_id for c in jobs.chunks(cid, stored.total, stored.chunk_size)]
    if desired == "cancelled":
        n = await store.cancel(ctx.pool, cid)
        await enqueue.remove(ctx.queue, all_ids)
        log.info("campaign %s cancelled: %d pending message(s) cancelled", cid, n)
    elif desired == "suspended":
        await store.set_state(ctx.pool, cid, "suspended")
        removed = await enqueue.remove(ctx.queue, all_ids)
        log.info("campaign %s suspended: %d queued job(s) withdrawn", cid, removed)
    else:
        await store.set_state(ctx.pool, cid, "active")
        await _sweep(ctx, cid, stored, opts, await ctx.redis_epoch())
        log.info("campaign %s resumed", cid)


async def _sweep(
    ctx: OperatorContext, cid: uuid.UUID, stored: store.Stored, opts: dict[str, Any], epoch: str
) -> None:
    """Re-enqueue every chunk that holds pending messages but has no live job."""
    chunk_numbers = await store.pending_chunks(ctx.pool, cid, stored.chunk_size)
    n = await enqueue.ensure(
        ctx.redis,
        ctx.queue,
        ctx.settings.queue_prefix,
        ctx.settings.queue_name,
        cid,
        chunk_numbers,
        stored.total,
        stored.chunk_size,
        opts,
    )
    metrics.REQUEUED_CHUNKS.inc(n)
    ctx.mark_swept(cid, epoch)


async def on_delete(ctx: OperatorContext, res: Resource) -> None:
    """Stop delivery of a deleted campaign; its rows stay, marked cancelled and deleted."""
    stored = await store.get(ctx.pool, res.uid)
    metrics.forget(res.namespace, res.name)
    ctx.swept.pop(res.uid, None)
    if stored is None:
        return
    n = await store.cancel(ctx.pool, res.uid, deleted=True)
    ids = [c.job_id for c in jobs.chunks(res.uid, stored.total, stored.chunk_size)]
    await enqueue.remove(ctx.queue, ids)
    log.info("campaign %s/%s deleted: %d pending message(s) cancelled", res.namespace, res.name, n)
