"""Campaigns: created as Campaign resources, read from their status and Postgres."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from notifq.api import kube, metrics, store, views
from notifq.api.deps import (
    Caller,
    CampaignId,
    CtxDep,
    CurrentCaller,
    MaybeCaller,
    admit_anonymous,
    require,
)
from notifq.api.errors import CampaignConflict, CampaignNotFound
from notifq.api.routes.responses import AUTH, FORBIDDEN, UNAVAILABLE, Responses, error
from notifq.api.schemas import (
    NAMESPACE_PATTERN,
    CampaignAccepted,
    CampaignCreate,
    CampaignDetailPublic,
    CampaignPublic,
    MessagePagePublic,
    MessagePublic,
    MessageStatus,
    RetryPublic,
)
from notifq.core import resource
from notifq.core.resource import FAILURES, REPORTS_GROUP

log = logging.getLogger(__name__)
router = APIRouter(prefix="/campaigns", tags=["campaigns"])

NOT_FOUND = error(404, "No such campaign")
CONFLICT = error(409, "Not possible in the campaign's state")
LIMITED = error(429, "Too many anonymous reads; see Retry-After")
ACTION: Responses = {**AUTH, **FORBIDDEN, **NOT_FOUND, **CONFLICT, **UNAVAILABLE}


Namespace = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=63,
        pattern=NAMESPACE_PATTERN,
        description="Namespace to list (default: the API's default namespace)",
    ),
]


async def _locate(ctx: CtxDep, cid: uuid.UUID) -> kube.Location:
    """Where campaign ``cid`` lives (404 if nowhere); reads no resource. Found once (the
    operator's row, else the resources' metadata), it is kept: a read costs no query."""
    known = ctx.campaigns.known(cid)
    if known is not None:
        return known
    hint = await store.campaign_location(ctx.pool, cid)
    if hint is not None:
        ctx.campaigns.remember(cid, hint)
        return hint
    return await asyncio.to_thread(ctx.campaigns.locate, cid)


async def _authorized(ctx: CtxDep, caller: Caller, cid: uuid.UUID, verb: str) -> kube.Resource:
    """The campaign ``cid``, once Kubernetes said ``caller`` may ``verb`` it (403 if not)."""
    location = await _locate(ctx, cid)
    await require(ctx, caller, verb, *location)
    return await asyncio.to_thread(ctx.campaigns.fetch, cid, location)


async def _patch(
    ctx: CtxDep, caller: Caller, cid: uuid.UUID, patch: dict[str, Any]
) -> CampaignPublic:
    res = await _authorized(ctx, caller, cid, "patch")
    res = await asyncio.to_thread(ctx.campaigns.patch, res, patch)
    return views.public(res)


@router.post(
    "",
    status_code=202,
    responses={**AUTH, **FORBIDDEN, **CONFLICT, **UNAVAILABLE},
)
async def create_campaign(
    body: CampaignCreate, ctx: CtxDep, caller: CurrentCaller
) -> CampaignAccepted:
    """Create a campaign (a Campaign resource the operator then delivers), in ``namespace``
    (default: the API's), if Kubernetes lets the caller create Campaigns there."""
    if body.recipients is not None and "recipientCount" in body.model_fields_set:
        raise HTTPException(400, "give either recipientCount or recipients, not both")
    namespace = body.namespace or ctx.settings.namespace
    await require(ctx, caller, "create", namespace)
    spec = views.spec_for(body)
    name = kube.resource_name(body.name)
    manifest = kube.manifest(name, namespace, body.name, spec, caller.identity.user)
    res = await asyncio.to_thread(ctx.campaigns.create, manifest)
    metrics.CAMPAIGNS_CREATED.inc()
    log.info("%s created campaign %s/%s", caller.identity.user, namespace, name)
    scheduled = body.scheduleAt is not None
    return CampaignAccepted(
        campaignId=res["metadata"]["uid"],
        name=body.name,
        resourceName=name,
        namespace=namespace,
        totalMessages=views.expected_total(spec),
        status="scheduled" if scheduled else "pending",
        message="Campaign scheduled" if scheduled else "Campaign created and queued for delivery",
    )


@router.get("", responses={**AUTH, **FORBIDDEN, **LIMITED, **UNAVAILABLE})
async def list_campaigns(
    ctx: CtxDep,
    caller: MaybeCaller,
    request: Request,
    response: Response,
    namespace: Namespace = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[CampaignPublic]:
    """Campaigns of ``namespace`` (default: the API's), newest first (limit/offset;
    X-Total-Count holds the total); needs ``list campaigns`` there."""
    ns = namespace or ctx.settings.namespace
    if caller is not None:
        await require(ctx, caller, "list", ns)
        page, total = await _list_page(ctx, ns, limit, offset)
    else:
        await admit_anonymous(ctx, request, ns)
        limit = min(limit, ctx.settings.anonymous_page_limit)
        key = ("list", ns, limit, offset)
        cached = ctx.anonymous_answers.get(key)
        if cached is None:
            cached = await _list_page(ctx, ns, limit, offset)
            ctx.anonymous_answers.put(key, cached, ctx.settings.anonymous_cache_seconds)
        page, total = cached
    response.headers["X-Total-Count"] = str(total)
    return page


async def _list_page(
    ctx: CtxDep, namespace: str, limit: int, offset: int
) -> tuple[list[CampaignPublic], int]:
    index = await asyncio.to_thread(ctx.campaigns.index, namespace)  # metadata only, no spec
    page = index[offset : offset + limit]
    stored = await store.snapshots(ctx.pool, [uuid.UUID(r["metadata"]["uid"]) for r in page])
    out = []
    for item in page:
        meta = item["metadata"]
        status = stored.get(meta["uid"])
        if status is not None:
            out.append(views.public({"metadata": meta, "status": status}))
            continue
        # not stored by the operator (yet): the resource itself, one GET
        res = await asyncio.to_thread(ctx.campaigns.get, namespace, meta["name"])
        if res is not None and res["metadata"].get("uid") == meta["uid"]:
            out.append(views.public(res))
    return out, len(index)


@router.get(
    "/{campaign_id}", responses={**AUTH, **FORBIDDEN, **NOT_FOUND, **LIMITED, **UNAVAILABLE}
)
async def get_campaign(
    campaign_id: CampaignId, ctx: CtxDep, caller: MaybeCaller, request: Request
) -> CampaignDetailPublic:
    """A campaign with its messages counted per status; needs ``get campaigns`` in its
    namespace."""
    if caller is not None:
        location = await _locate(ctx, campaign_id)
        await require(ctx, caller, "get", *location)
        return await _detail(ctx, campaign_id, location)
    await admit_anonymous(ctx, request, ctx.settings.namespace)
    key = ("detail", campaign_id)
    cached: CampaignDetailPublic | None = ctx.anonymous_answers.get(key)
    if cached is None:
        location = await _locate(ctx, campaign_id)
        if location[0] != ctx.settings.namespace:  # anonymous callers see no other namespace
            raise CampaignNotFound(f"campaign {campaign_id} not found")
        cached = await _detail(ctx, campaign_id, location)
        ctx.anonymous_answers.put(key, cached, ctx.settings.anonymous_cache_seconds)
    return cached


async def _detail(ctx: CtxDep, cid: uuid.UUID, location: kube.Location) -> CampaignDetailPublic:
    # a stored campaign: the operator's copy of its status and the counters, one read
    if not ctx.campaigns.deleted_here(cid):
        row = await store.detail(ctx.pool, cid, location[0])
        if row is not None:
            return views.detail_from_row(str(cid), location[0], row)
    # not stored (yet), or stored by an older operator: the resource itself
    res = await asyncio.to_thread(ctx.campaigns.fetch, cid, location)
    public = views.public(res)
    counts = await store.progress(ctx.pool, cid)
    if not any(counts.values()):  # not stored yet: everything is still to be sent
        counts["pending"] = public.totalMessages
    status = res.get("status") or {}
    return views.detail(public, counts, str(status.get("message") or ""), status.get("quota"))


@router.post(
    "/{campaign_id}/retry",
    responses={
        202: {"model": RetryPublic, "description": "Asked; the operator has not acted yet"},
        **error(400, "Nothing to retry"),
        **ACTION,
    },
)
async def retry_failed(
    campaign_id: CampaignId, ctx: CtxDep, caller: CurrentCaller, response: Response
) -> RetryPublic:
    """Send the failed messages again (invalid addresses excepted).

    Answers once the operator has made them pending again, so the campaign already reads
    ``processing``; 202 if the operator did not do so within ``retry_wait_seconds``.
    """
    res = await _authorized(ctx, caller, campaign_id, "patch")
    if (res.get("spec") or {}).get("cancel"):
        raise CampaignConflict("a cancelled campaign cannot be retried")
    count = await store.retryable(ctx.pool, campaign_id)
    if count == 0:
        raise HTTPException(400, "no failed messages to retry")
    token = resource.retry_token()
    res = await asyncio.to_thread(ctx.campaigns.patch, res, resource.retry_patch(token))
    log.info("%s asked to retry %d message(s) of %s", caller.identity.user, count, campaign_id)
    done = await _retry_taken(ctx, res, token)
    if done is None:
        response.status_code = 202  # the operator has not picked it up yet
        return RetryPublic(retriedCount=count, status=views.public(res).status)
    retried = int(((done.get("status") or {}).get("retry") or {}).get("retried") or 0)
    return RetryPublic(retriedCount=retried, status=views.public(done).status)


async def _retry_taken(ctx: CtxDep, res: kube.Resource, token: str) -> kube.Resource | None:
    """The resource once the operator recorded retry ``token`` (None after the wait)."""
    namespace, name = res["metadata"]["namespace"], res["metadata"]["name"]
    deadline = time.monotonic() + ctx.settings.retry_wait_seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        cur = await asyncio.to_thread(ctx.campaigns.get, namespace, name)
        if cur is None or cur["metadata"].get("uid") != res["metadata"]["uid"]:
            raise CampaignNotFound(f"campaign {res['metadata']['uid']} not found")
        if ((cur.get("status") or {}).get("retry") or {}).get("token") == token:
            return cur
    return None


@router.post("/{campaign_id}/suspend", responses=ACTION)
async def suspend(campaign_id: CampaignId, ctx: CtxDep, caller: CurrentCaller) -> CampaignPublic:
    """Pause delivery (spec.suspend = true)."""
    return await _patch(ctx, caller, campaign_id, {"spec": {"suspend": True}})


@router.post("/{campaign_id}/resume", responses=ACTION)
async def resume(campaign_id: CampaignId, ctx: CtxDep, caller: CurrentCaller) -> CampaignPublic:
    """Resume delivery (spec.suspend = false)."""
    return await _patch(ctx, caller, campaign_id, {"spec": {"suspend": False}})


@router.post("/{campaign_id}/cancel", responses=ACTION)
async def cancel(campaign_id: CampaignId, ctx: CtxDep, caller: CurrentCaller) -> CampaignPublic:
    """Stop for good: messages not yet sent become cancelled (spec.cancel = true)."""
    return await _patch(ctx, caller, campaign_id, {"spec": {"cancel": True}})


@router.delete(
    "/{campaign_id}", status_code=204, responses={**AUTH, **FORBIDDEN, **NOT_FOUND, **UNAVAILABLE}
)
async def delete_campaign(campaign_id: CampaignId, ctx: CtxDep, caller: CurrentCaller) -> Response:
    """Delete the Campaign resource; delivery stops, rows stay in Postgres for audit."""
    res = await _authorized(ctx, caller, campaign_id, "delete")
    await asyncio.to_thread(ctx.campaigns.delete, res)
    log.info("%s deleted campaign %s", caller.identity.user, campaign_id)
    return Response(status_code=204)


@router.get("/{campaign_id}/messages", responses={**AUTH, **FORBIDDEN, **NOT_FOUND, **UNAVAILABLE})
async def list_messages(
    campaign_id: CampaignId,
    ctx: CtxDep,
    caller: CurrentCaller,
    status: MessageStatus | None = None,
    after: Annotated[int, Query(ge=-1, le=2**31 - 1)] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MessagePagePublic:
    """Messages in seq order, optionally of one status (keyset pagination with ``after``);
    recipients are personal data: needs what the reports API needs, ``get
    campaignfailures.reports.notifq.dev`` on the campaign."""
    namespace, name = await _locate(ctx, campaign_id)
    await require(ctx, caller, "get", namespace, name, group=REPORTS_GROUP, resource=FAILURES)
    await asyncio.to_thread(ctx.campaigns.fetch, campaign_id, (namespace, name))
    rows = await store.messages(ctx.pool, campaign_id, status, after, limit)
    items = [
        MessagePublic(
            seq=r.seq,
            recipient=r.recipient,
            status=r.status,  # type: ignore[arg-type]
            attempts=r.attempts,
            lastError=r.last_error,
            sentAt=r.sent_at,
            updatedAt=r.updated_at,
        )
        for r in rows
    ]
    return MessagePagePublic(items=items, nextAfter=rows[-1].seq if len(rows) == limit else None)
