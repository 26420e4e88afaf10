"""Level-based reconciliation of one Campaign: rows, jobs, intent and status.

Called every ``status_interval`` seconds per campaign that has work left (see
:mod:`notifq.operator.supervisor`). Each step checks the world and does only
what is missing, so a restart at any point finishes the work without
duplicates. The steps, as in docs/architecture.md: store, enqueue, follow
intent, retry-failed, sweep, report.

Jobs exist only for an active campaign: every add happens under the campaign
row's lock after checking its state (:func:`_add_jobs`), and every change away
from ``active`` (suspend, cancel, delete) updates that row first and withdraws
jobs after its commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from notifq.core import jobs
from notifq.core.errors import InvalidCampaign, TemplateError
from notifq.core.policy import Limits
from notifq.core.resource import DISPLAY_NAME_ANNOTATION, RETRY_ANNOTATION, format_time
from notifq.core.templating import DEFAULT_BODY, DEFAULT_SUBJECT, MessageTemplate
from notifq.operator import (
    admission,
    enqueue,
    failover_status,
    guard,
    metrics,
    quota_status,
    sources,
    store,
    storing,
)
from notifq.operator import status as st
from notifq.operator.context import OperatorContext
from notifq.operator.policies import PolicyUnavailable, Waiting

log = logging.getLogger(__name__)


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
    created: str = ""
    """``metadata.creationTimestamp``: the order waiting campaigns are let in."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Resource:
        meta = body.get("metadata", {})
        return cls(
            uid=uuid.UUID(meta["uid"]),
            namespace=meta.get("namespace", "default"),
            name=meta["name"],
            generation=int(meta.get("generation", 1)),
            spec=body.get("spec", {}),
            status=body.get("status", {}),
            annotations=meta.get("annotations") or {},
            created=str(meta.get("creationTimestamp") or ""),
        )

    @property
    def retry_token(self) -> str | None:
        """A ``notifq.dev/retry-failed`` value not handled yet."""
        token = self.annotations.get(RETRY_ANNOTATION)
        handled = (self.status.get("retry") or {}).get("token")
        return token if token and token != handled else None

    @property
    def settled(self) -> bool:
        """Final, and nothing asked since: no reconciliation needed until it changes."""
        return (
            self.status.get("phase") in st.FINAL_PHASES
            and self.retry_token is None
            and self.status.get("observedGeneration") == self.generation
        )


def campaign_row(res: Resource, chunk_size: int) -> store.CampaignRow:
    """The campaign row for a resource (templates are checked by :func:`check_templates`)."""
    spec = res.spec
    subject = spec.get("subject") or DEFAULT_SUBJECT
    html = spec.get("html") or None
    body = spec.get("text") or spec.get("body") or ("" if html else DEFAULT_BODY)
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
        html=html,
    )


async def check_templates(
    ctx: OperatorContext, row: store.CampaignRow, src: sources.Recipients
) -> None:
    """The fields the templates name are the list's (every recipient has them), and a
    sample message renders within the render budget; :class:`InvalidCampaign` if not."""
    tmpl = MessageTemplate(row.name, row.subject, row.body, row.html)
    used = frozenset(tmpl.fields())
    unknown = sorted(used - src.fields)
    if unknown:
        have = ", ".join(sorted(src.fields)) or "none: a list of plain addresses"
        raise TemplateError(
            f"{unknown[0]!r} is undefined: the template uses field {unknown[0]!r}, which the "
            f"recipient list does not have (variables: recipient, index, campaign; "
            f"fields: {have})"
        )
    lacking = src.lacking(used)
    if lacking is not None:
        raise TemplateError(lacking)
    error = await ctx.renderer.check(tmpl, src.sample)
    if error is not None:
        raise TemplateError(error)


def desired_state(spec: Mapping[str, Any], now: datetime | None = None) -> str:
    """The row state a spec asks for; a future ``scheduleAt`` holds the campaign."""
    if spec.get("cancel"):
        return "cancelled"
    if spec.get("suspend") or st.scheduled_later(spec, now or datetime.now(UTC)):
        return "suspended"
    return "active"


async def reconcile(ctx: OperatorContext, res: Resource) -> dict[str, Any] | None:
    """Bring rows and jobs in line with the resource; the status to patch, or None."""
    if res.settled:
        return None
    stored = await store.get(ctx.pool, res.uid)
    if stored is None or stored.materialized_at is None:
        t0 = time.perf_counter()
        early = await store_campaign(ctx, res, resumed=stored is not None)
        if early is not None:
            return early if st.changed(res.status, early) else None
        fresh = await _fresh(ctx, res)
        if fresh is None:  # deleted while it was being stored
            await on_delete(ctx, res)
            return None
        res = fresh
        stored = await store.get(ctx.pool, res.uid)
        assert stored is not None
        state = await follow_intent(ctx, res, stored)
        await enqueue_all(ctx, res, stored, state, t0)
    elif stored.expired_at is not None:
        return None  # its rows are gone (retention): the status keeps the last counts
    else:
        state = await follow_intent(ctx, res, stored)
    if (
        state in ("active", "suspended")  # suspended: its trip may not be recorded yet
        and stored.guard_tripped_at is None
        and (stored.bounced or stored.complained)
    ):
        tripped = await check_reputation(ctx, res, stored)
        if tripped is not None:
            res, stored = tripped
            state = await follow_intent(ctx, res, stored)
    if state == "active":
        await _publish_shares(ctx, res.namespace)
    opts = jobs.job_options(stored.max_attempts, stored.backoff_ms)
    extra = await retry_failed(ctx, res, stored, opts) if state == "active" else {}
    if state == "active":
        epoch = await ctx.redis_epoch()
        if ctx.sweep_due(res.uid, epoch):
            await sweep(ctx, res.uid, stored, opts, epoch)
    return await report(ctx, res, stored, extra)


async def _publish_shares(ctx: OperatorContext, namespace: str) -> None:
    """The namespace's provider shares where the workers read them (a policy change reaches
    running campaigns); policies that cannot be read now leave the last published ones."""
    if ctx.policies is None:
        return
    try:
        await ctx.policies.publish(namespace, await ctx.policies.limits(namespace))
    except PolicyUnavailable as exc:
        log.warning("namespace %s: provider shares not refreshed: %s", namespace, exc)


async def store_campaign(
    ctx: OperatorContext, res: Resource, *, resumed: bool = False
) -> dict[str, Any] | None:
    """Step 1: store rows in the state the spec asks for; a status instead when not (yet).
    ``resumed``: its row exists (admitted before, storing goes on)."""
    spec, old = res.spec, res.status
    ns, me = res.namespace, Waiting(res.created, res.name, res.uid)
    assert ctx.admission is not None

    if spec.get("cancel"):
        ctx.slots.leave(ns, res.uid)
        return _unstored(res, "Cancelled", "cancelled before it started")
    if st.scheduled_later(spec, datetime.now(UTC)):
        ctx.slots.leave(ns, res.uid)
        return _unstored(res, "Scheduled", f"starts at {spec['scheduleAt']}")
    if old.get("phase") == "Failed" and old.get("observedGeneration") == res.generation:
        return _unstored(res, "Failed", str(old.get("message", "")))
    limits = await ctx.policies.limits(ns) if ctx.policies is not None else Limits()
    took = False
    if (
        not resumed
        and old.get("phase") == "Queued"
        and old.get("observedGeneration") == res.generation
    ):
        # validated when it was queued: while it waits, a wake costs a slot count, not
        # another read of its list (validation runs again once a slot is free)
        waits = await ctx.admission.take(ns, me, limits)
        if waits is not None:
            return _unstored(res, "Queued", waits)
        took = True
    try:
        try:
            row, src = await _admissible(ctx, res, limits)
        except InvalidCampaign:
            if ctx.policies is None:
                raise
            # a refusal is final: judge it by the policies as they are now, not as cached
            # (a NotifqPolicy made just before the campaign may not have reached the cache)
            limits = await ctx.policies.limits(ns, fresh=True)
            row, src = await _admissible(ctx, res, limits)
        if ctx.policies is not None and sources.known_size(src) is None:
            # a list counted while it is read is refused mid-way, for good: by the
            # policies as they are when its storing starts
            limits = await ctx.policies.limits(ns, fresh=True)
    except InvalidCampaign as exc:
        ctx.slots.leave(ns, res.uid)
        if took:
            ctx.admission.stored(ns, res.uid)  # the slot it took is free again
        return _invalid(res, exc)
    except BaseException:
        if took:  # retried later: it queues again
            ctx.admission.stored(ns, res.uid)
        raise
    if resumed:
        ctx.admission.admitting.setdefault(ns, set()).add(res.uid)
    elif not took:
        waits = await ctx.admission.take(ns, me, limits)
        if waits is not None:
            return _unstored(res, "Queued", waits)
    try:
        async with ctx.storing:  # a burst of new campaigns leaves the pool to the others
            return await _store(ctx, res, row, src, limits)
    finally:
        ctx.admission.stored(ns, res.uid)


async def _admissible(
    ctx: OperatorContext, res: Resource, limits: Limits
) -> tuple[store.CampaignRow, sources.Recipients]:
    """The campaign's row and its recipients' source, checked against the settings and
    ``limits``; :class:`InvalidCampaign` when it cannot be sent."""
    row = campaign_row(res, ctx.settings.chunk_size)
    if row.channel == "push" and not ctx.settings.push_arn_prefixes:
        raise InvalidCampaign(
            "push is off: the operator's NOTIFQ_PUSH_ARN_PREFIXES lists no SNS ARN "
            "prefix push targets may lie under"
        )
    MessageTemplate(row.name, row.subject, row.body, row.html)  # parses, before any read
    src = await sources.resolve(
        res.spec,
        res.namespace,
        ctx.core_api,
        max_generated=ctx.settings.max_generated_recipients,
        max_inline=ctx.settings.max_inline_recipients,
        store=ctx.objects,
        batch=ctx.settings.store_batch,
        limits=limits,
    )
    admission.check_size(res.namespace, limits, sources.known_size(src))
    await check_templates(ctx, row, src)
    return row, src


async def _store(
    ctx: OperatorContext,
    res: Resource,
    row: store.CampaignRow,
    src: sources.Recipients,
    limits: Limits,
) -> dict[str, Any] | None:
    """Fence the spec, then store the campaign's rows (it holds a slot from here)."""
    spec = res.spec
    if ctx.policies is not None:  # the namespace's shares are in place before any job
        await ctx.policies.publish(res.namespace, limits)
    fenced = await _fence(ctx, res, row, src)
    if fenced is None:
        return None  # deleted meanwhile: the caller finds it gone
    if isinstance(fenced, dict):
        return fenced
    row = fenced
    checks = storing.Checks(
        push_prefixes=tuple(ctx.settings.push_arn_prefixes),
        parallel=ctx.settings.store_parts,
        max_chunks=ctx.settings.max_chunks,
        max_recipients=limits.max_recipients,
        limit_message=admission.POLICY_PREFIX + admission.size_message(res.namespace, limits, None),
    )
    try:
        total = await storing.materialize(
            ctx.pool, row, src, state=desired_state(spec), checks=checks
        )
    except InvalidCampaign as exc:  # the list turned out unusable while it was read
        failed = _invalid(res, exc)
        failed["startTime"] = None
        return failed
    if total is None:
        log.info("campaign %s/%s was deleted before it was stored", res.namespace, res.name)
    return None


def _unstored(res: Resource, phase: str, message: str) -> dict[str, Any]:
    """The status of a campaign whose rows are not stored (yet): no counts."""
    return st.build(
        old=res.status,
        spec=res.spec,
        generation=res.generation,
        phase=phase,
        counts=None,
        total=0,
        message=message,
    )


def _invalid(res: Resource, exc: InvalidCampaign) -> dict[str, Any]:
    log.warning("campaign %s/%s is invalid: %s", res.namespace, res.name, exc)
    metrics.RECONCILES.labels("invalid").inc()
    return _unstored(res, "Failed", str(exc))


async def _fence(
    ctx: OperatorContext, res: Resource, row: store.CampaignRow, src: sources.Recipients
) -> store.CampaignRow | dict[str, Any] | None:
    """Set ``status.startTime`` before storing, then store from the spec as it is after.

    From that status write on, the API server refuses edits of subject, body and retry
    (CRD rules), so an edit is either in the stored rows or refused with a message,
    never accepted and then ignored. Returns the row to store, a Failed status when the
    edited templates do not render (startTime removed again: the spec stays fixable), or
    None when the Campaign was deleted.
    """
    api = ctx.campaigns_api
    if api is None:
        return row
    if not await asyncio.to_thread(
        api.patch_status, res.namespace, res.name, {"startTime": st.now_iso()}
    ):
        return None
    fresh = await _fresh(ctx, res)
    if fresh is None:
        return None
    edited = campaign_row(fresh, ctx.settings.chunk_size)
    if edited == row:
        return row
    try:
        await check_templates(ctx, edited, src)
    except InvalidCampaign as exc:
        failed = _invalid(fresh, exc)
        failed["startTime"] = None  # merge patch: removed, so the spec can be fixed
        return failed
    log.info("campaign %s/%s: stored as edited just before storing", res.namespace, res.name)
    return edited


async def _fresh(ctx: OperatorContext, res: Resource) -> Resource | None:
    """The resource as the API server has it now (None when deleted), so that an
    intent set while the campaign was being stored counts before any job exists."""
    if ctx.campaigns_api is None:
        return res
    body = await asyncio.to_thread(ctx.campaigns_api.get, res.namespace, res.name)
    if body is None or body.get("metadata", {}).get("uid") != str(res.uid):
        return None
    if body["metadata"].get("deletionTimestamp"):
        return None
    return Resource.from_body(body)


async def enqueue_all(
    ctx: OperatorContext, res: Resource, stored: store.Stored, state: str, t0: float
) -> None:
    """Step 2: one job per chunk, if the campaign is active (checked under its lock)."""
    added = 0
    if state == "active":
        opts = jobs.job_options(stored.max_attempts, stored.backoff_ms)
        chunk_jobs = jobs.chunks(res.uid, stored.total, stored.chunk_size)
        added = await _add_jobs(ctx, res.uid, chunk_jobs, opts)
        ctx.mark_swept(res.uid, await ctx.redis_epoch())
        if added == len(chunk_jobs):
            await store.mark_queued(ctx.pool, res.uid)
    elapsed = time.perf_counter() - t0
    metrics.MATERIALIZE_SECONDS.observe(elapsed)
    log.info(
        "campaign %s/%s: stored and queued %d messages (%d chunk jobs, %s) in %.2fs",
        res.namespace,
        res.name,
        stored.total,
        added,
        state,
        elapsed,
    )


async def _add_jobs(
    ctx: OperatorContext, cid: uuid.UUID, chunk_jobs: Sequence[jobs.ChunkJob], opts: dict[str, Any]
) -> int:
    """Add jobs batch by batch, each under the row lock and only while the row is active."""
    added = 0
    for batch in enqueue.batches(chunk_jobs):
        async with store.locked_state(ctx.pool, cid) as state:
            if state != "active":
                break
            await enqueue.add(ctx.queue, batch, opts)
        added += len(batch)
    return added


async def follow_intent(ctx: OperatorContext, res: Resource, stored: store.Stored) -> str:
    """Step 3: ``cancel``/``suspend``/``scheduleAt`` and ``rateLimit`` of the spec become
    the row's; returns the state now in force."""
    cid = res.uid
    rate_limit = res.spec.get("rateLimit")
    if rate_limit != stored.rate_limit:
        await store.set_rate_limit(ctx.pool, cid, rate_limit)
        log.info("campaign %s: rate limit now %s", cid, rate_limit)
    desired = desired_state(res.spec)
    if stored.state == "cancelled" and desired != "cancelled":
        return stored.state  # cancelled for good (a delete, the orphan sweep)
    if stored.state == desired != "cancelled":
        return stored.state
    all_ids = [c.job_id for c in jobs.chunks(cid, stored.total, stored.chunk_size)]
    if desired == "cancelled":  # again until the status says Cancelled: the supervisor
        # may have committed the state alone (store.stop) as soon as it saw the request
        n = await store.cancel(ctx.pool, cid)
        await enqueue.remove(ctx.queue, all_ids)
        log.info("campaign %s cancelled: %d pending message(s) cancelled", cid, n)
    elif desired == "suspended":
        await store.set_state(ctx.pool, cid, "suspended")
        removed = await enqueue.remove(ctx.queue, all_ids)
        log.info("campaign %s suspended: %d queued job(s) withdrawn", cid, removed)
    else:
        await store.set_state(ctx.pool, cid, "active")
        opts = jobs.job_options(stored.max_attempts, stored.backoff_ms)
        await sweep(ctx, cid, stored, opts, await ctx.redis_epoch())
        log.info("campaign %s resumed", cid)
    return desired


async def check_reputation(
    ctx: OperatorContext, res: Resource, stored: store.Stored
) -> tuple[Resource, store.Stored] | None:
    """The reputation guard (:mod:`.guard`): when the campaign's feedback rates passed
    their limits, ``spec.suspend`` is set and the trip recorded; returns the resource and
    row as they are now (to suspend it in this step), or None."""
    counts = await store.counts(ctx.pool, res.uid)
    reason = guard.verdict(counts["sent"], stored.bounced, stored.complained, ctx.settings)
    if reason is None or ctx.campaigns_api is None:
        return None
    # the spec first, then the record: a failure between them leaves a suspended campaign
    # whose trip the next reconcile records (the check runs while it is suspended too)
    if not res.spec.get("suspend"):
        await guard.suspend_spec(ctx.campaigns_api, res.namespace, res.name)
    await store.trip_guard(ctx.pool, res.uid, reason)
    log.warning(
        "campaign %s/%s suspended by the reputation guard: %s", res.namespace, res.name, reason
    )
    fresh = await store.get(ctx.pool, res.uid)
    assert fresh is not None
    return replace(res, spec={**res.spec, "suspend": True}), fresh


async def retry_failed(
    ctx: OperatorContext, res: Resource, stored: store.Stored, opts: dict[str, Any]
) -> dict[str, Any]:
    """Step 4: a new ``notifq.dev/retry-failed`` token re-queues failed messages."""
    token = res.retry_token
    if token is None:
        return {}
    retried = await store.retry_failed(ctx.pool, res.uid)
    await enqueue.forget_replacements(
        ctx.redis, ctx.settings.queue_prefix, ctx.settings.queue_name, res.uid
    )
    await sweep(ctx, res.uid, stored, opts, await ctx.redis_epoch())
    log.info(
        "campaign %s/%s: retry-failed %r re-queued %d message(s)",
        res.namespace,
        res.name,
        token,
        retried,
    )
    return {"retry": {"token": token, "retried": retried, "time": st.now_iso()}}


async def sweep(
    ctx: OperatorContext, cid: uuid.UUID, stored: store.Stored, opts: dict[str, Any], epoch: str
) -> None:
    """Step 5: re-enqueue every chunk that holds pending messages but has no live job."""
    chunk_numbers = await store.pending_chunks(ctx.pool, cid)
    found = await enqueue.missing(
        ctx.redis,
        ctx.queue,
        ctx.settings.queue_prefix,
        ctx.settings.queue_name,
        cid,
        chunk_numbers,
        stored.total,
        stored.chunk_size,
        ctx.settings.max_job_replacements,
    )
    for k, reason in found.given_up.items():
        start = k * stored.chunk_size
        await store.fail_pending(ctx.pool, cid, start, start + stored.chunk_size, reason)
    metrics.GIVEN_UP_CHUNKS.inc(len(found.given_up))
    if found.chunks:
        n = await _add_jobs(ctx, cid, found.chunks, opts)
        metrics.REQUEUED_CHUNKS.inc(n)
        log.info("campaign %s: re-enqueued %d chunk(s)", cid, n)
    ctx.mark_swept(cid, epoch)


async def report(
    ctx: OperatorContext, res: Resource, stored: store.Stored, extra: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Step 6: counts from the database into the status; None when nothing changed."""
    old = res.status
    counts = await store.counts(ctx.pool, res.uid)
    phase = st.phase_for(res.spec, counts, stored.total)
    for s, n in counts.items():
        metrics.CAMPAIGN_MESSAGES.labels(res.namespace, res.name, s).set(n)
    start = format_time(stored.started_at) if stored.started_at else None
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
    feedback(new, res, stored, phase)
    failover = await failover_status.read(ctx.redis, ctx.settings.queue_prefix, res.uid)
    if failover or (failover is None and old.get("failover")):
        new["failover"] = failover or old["failover"]
    await quota_status.annotate(
        ctx.redis, ctx.settings.queue_prefix, res.uid, old, new, res.generation
    )
    if counts["failed"] != old.get("failed") or (counts["failed"] and "failureReasons" not in old):
        new["failureReasons"] = await store.failure_reasons(ctx.pool, res.uid)
    if phase not in st.FINAL_PHASES and old.get("completionTime"):
        new["completionTime"] = None  # merge patch: remove (a retry reopened the campaign)
    changed = st.changed(old, new)
    if changed or stored.status_at is None:
        shown = store.Shown(
            display_name=res.annotations.get(DISPLAY_NAME_ANNOTATION),
            created=st.parse_time(res.created),
            message=str(new.get("message") or ""),
            quota=new.get("quota"),
        )
        final = phase in st.FINAL_PHASES
        await store.snapshot(
            ctx.pool, res.uid, phase, counts["sent"], counts["failed"], final, shown
        )
    return new if changed else None


def feedback(new: dict[str, Any], res: Resource, stored: store.Stored, phase: str) -> None:
    """SES feedback counts and the reputation guard's verdict into the status ``new``."""
    new["bounced"] = stored.bounced
    new["complained"] = stored.complained
    if stored.guard_tripped_at is None:
        return
    reason = stored.guard_reason or ""
    new["reputationGuard"] = {"trippedAt": format_time(stored.guard_tripped_at), "reason": reason}
    holding = phase == "Suspended"
    if holding:
        new["message"] = (
            f"suspended by the reputation guard: {reason}; set spec.suspend to false to resume"
        )
    new["conditions"].append(
        st.condition(
            res.status.get("conditions"),
            "ReputationGuard",
            holding,
            "RateOverLimit" if holding else "ResumedByUser",
            reason,
            res.generation,
        )
    )


async def stop(ctx: OperatorContext, res: Resource) -> None:
    """``spec.cancel`` seen: commit the stopped state at once (the rest follows in
    :func:`follow_intent`). Nothing to do for a campaign not stored yet."""
    await store.stop(ctx.pool, res.uid)


async def on_delete(ctx: OperatorContext, res: Resource) -> None:
    """Stop delivery of a deleted campaign; its rows stay, marked cancelled and deleted.

    Works whether or not the campaign was stored, and while it is being stored
    (the tombstone waits for the COPY's transaction, whose enqueue step then
    finds it cancelled).
    """
    metrics.forget(res.namespace, res.name)
    ctx.swept.pop(res.uid, None)
    await _forget(ctx, res.uid, res.namespace, res.name)


async def _forget(ctx: OperatorContext, cid: uuid.UUID, namespace: str, name: str) -> None:
    n, total, chunk_size = await store.tombstone(
        ctx.pool, cid, namespace, name, ctx.settings.chunk_size
    )
    ids = [c.job_id for c in jobs.chunks(cid, total, chunk_size)]
    await enqueue.remove(ctx.queue, ids)
    await storing.discard(ctx.pool, cid)  # a list half stored when the operator died
    log.info("campaign %s/%s deleted: %d pending message(s) cancelled", namespace, name, n)


async def sweep_orphans(ctx: OperatorContext) -> int:
    """Cancel the unfinished campaigns whose resource no longer exists (deleted while
    no operator was watching). Rows are read before the Campaigns are listed, so a
    row always belongs to a resource created before the list. Returns how many."""
    if ctx.campaigns_api is None:
        return 0
    rows = await store.unfinished(ctx.pool)
    by_ns: dict[str, list[tuple[uuid.UUID, str]]] = {}
    for cid, ns, name in rows:
        by_ns.setdefault(ns, []).append((cid, name))
    n = 0
    for ns, items in by_ns.items():
        existing = await asyncio.to_thread(ctx.campaigns_api.existing_uids, ns)
        if existing is None:
            continue
        for cid, name in items:
            if cid not in existing:
                log.info("campaign %s/%s (%s) no longer exists: cancelling", ns, name, cid)
                await _forget(ctx, cid, ns, name)
                n += 1
    return n
