"""Campaigns: created as Campaign resources, read from their status and Postgres."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from notifq.api import kube, metrics, store, views
from notifq.api.deps import CampaignId, CtxDep, CurrentAdmin
from notifq.api.errors import CampaignConflict, CampaignNotFound
from notifq.api.schemas import (
    CampaignAccepted,
    CampaignCreate,
    CampaignDetailPublic,
    CampaignPublic,
    ErrorPublic,
    MessagePagePublic,
    MessagePublic,
    MessageStatus,
    RetryPublic,
)
from notifq.core import resource

log = logging.getLogger(__name__)
router = APIRouter(prefix="/campaigns", tags=["campaigns"])

Responses = dict[int | str, dict[str, Any]]
AUTH: Responses = {401: {"model": ErrorPublic, "description": "Missing or invalid token"}}
NOT_FOUND: Responses = {404: {"model": ErrorPublic, "description": "No such campaign"}}
CONFLICT: Responses = {
    409: {"model": ErrorPublic, "description": "Not possible in the campaign's state"}
}
UNAVAILABLE: Responses = {
    503: {"model": ErrorPublic, "description": "Kubernetes or Postgres unavailable"}
}


async def _find(ctx: CtxDep, cid: uuid.UUID) -> kube.Resource:
    hint = await store.campaign_name(ctx.pool, cid, ctx.campaigns.namespace)
    return await asyncio.to_thread(ctx.campaigns.find, cid, hint)


async def _patch(ctx: CtxDep, cid: uuid.UUID, patch: dict[str, Any]) -> CampaignPublic:
    res = await _find(ctx, cid)
    res = await asyncio.to_thread(ctx.campaigns.patch, res, patch)
    return views.public(res)


@router.post(
    "",
    status_code=202,
    responses={**AUTH, **CONFLICT, **UNAVAILABLE},
)
async def create_campaign(
    body: CampaignCreate, ctx: CtxDep, admin: CurrentAdmin
) -> CampaignAccepted:
    """Create a campaign (a Campaign resource the operator then delivers)."""
    if body.recipients is not None and "recipientCount" in body.model_fields_set:
        raise HTTPException(400, "give either recipientCount or recipients, not both")
    spec = views.spec_for(body)
    name = kube.resource_name(body.name)
    manifest = kube.manifest(name, ctx.campaigns.namespace, body.name, spec, admin.id)
    res = await asyncio.to_thread(ctx.campaigns.create, manifest)
    metrics.CAMPAIGNS_CREATED.inc()
    log.info("admin %s created campaign %s/%s", admin.id, ctx.campaigns.namespace, name)
    scheduled = body.scheduleAt is not None
    return CampaignAccepted(
        campaignId=res["metadata"]["uid"],
        name=body.name,
        resourceName=name,
        totalMessages=views.expected_total(spec),
        status="scheduled" if scheduled else "pending",
        message="Campaign scheduled" if scheduled else "Campaign created and queued for delivery",
    )


@router.get("", responses={**UNAVAILABLE})
async def list_campaigns(
    ctx: CtxDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[CampaignPublic]:
    """Campaigns, newest first (limit/offset; X-Total-Count holds the total)."""
    index = await asyncio.to_thread(ctx.campaigns.index)  # metadata only, no spec
    response.headers["X-Total-Count"] = str(len(index))
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
        res = await asyncio.to_thread(ctx.campaigns.get, meta["name"])
        if res is not None and res["metadata"].get("uid") == meta["uid"]:
            out.append(views.public(res))
    return out


@router.get("/{campaign_id}", responses={**NOT_FOUND, **UNAVAILABLE})
async def get_campaign(campaign_id: CampaignId, ctx: CtxDep) -> CampaignDetailPublic:
    """A campaign with its messages counted per status."""
    # a stored campaign: the operator's copy of its status and the counters, one read
    if not ctx.campaigns.deleted_here(campaign_id):
        row = await store.detail(ctx.pool, campaign_id, ctx.campaigns.namespace)
        if row is not None:
            return views.detail_from_row(str(campaign_id), row)
    # not stored (yet), or stored by an older operator: the resource itself
    res = await _find(ctx, campaign_id)
    counts = await store.progress(ctx.pool, campaign_id)
    status = res.get("status") or {}
    return views.detail(
        views.public(res), counts, str(status.get("message") or ""), status.get("quota")
    )


@router.post(
    "/{campaign_id}/retry",
    responses={
        202: {"model": RetryPublic, "description": "Asked; the operator has not acted yet"},
        400: {"model": ErrorPublic, "description": "Nothing to retry"},
        **AUTH,
        **NOT_FOUND,
        **CONFLICT,
        **UNAVAILABLE,
    },
)
async def retry_failed(
    campaign_id: CampaignId, ctx: CtxDep, admin: CurrentAdmin, response: Response
) -> RetryPublic:
    """Send the failed messages again (invalid addresses excepted).

    Answers once the operator has made them pending again, so the campaign already reads
    ``processing``; 202 if the operator did not do so within ``retry_wait_seconds``.
    """
    res = await _find(ctx, campaign_id)
    if (res.get("spec") or {}).get("cancel"):
        raise CampaignConflict("a cancelled campaign cannot be retried")
    count = await store.retryable(ctx.pool, campaign_id)
    if count == 0:
        raise HTTPException(400, "no failed messages to retry")
    token = resource.retry_token()
    res = await asyncio.to_thread(ctx.campaigns.patch, res, resource.retry_patch(token))
    log.info("admin %s asked to retry %d message(s) of %s", admin.id, count, campaign_id)
    done = await _retry_taken(ctx, res, token)
    if done is None:
        response.status_code = 202  # the operator has not picked it up yet
        return RetryPublic(retriedCount=count, status=views.public(res).status)
    retried = int(((done.get("status") or {}).get("retry") or {}).get("retried") or 0)
    return RetryPublic(retriedCount=retried, status=views.public(done).status)


async def _retry_taken(ctx: CtxDep, res: kube.Resource, token: str) -> kube.Resource | None:
    """The resource once the operator recorded retry ``token`` (None after the wait)."""
    name = res["metadata"]["name"]
    deadline = time.monotonic() + ctx.settings.retry_wait_seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        cur = await asyncio.to_thread(ctx.campaigns.get, name)
        if cur is None or cur["metadata"].get("uid") != res["metadata"]["uid"]:
            raise CampaignNotFound(f"campaign {res['metadata']['uid']} not found")
        if ((cur.get("status") or {}).get("retry") or {}).get("token") == token:
            return cur
    return None


@router.post("/{campaign_id}/suspend", responses={**AUTH, **NOT_FOUND, **CONFLICT, **UNAVAILABLE})
async def suspend(campaign_id: CampaignId, ctx: CtxDep, _: CurrentAdmin) -> CampaignPublic:
    """Pause delivery (spec.suspend = true)."""
    return await _patch(ctx, campaign_id, {"spec": {"suspend": True}})


@router.post("/{campaign_id}/resume", responses={**AUTH, **NOT_FOUND, **CONFLICT, **UNAVAILABLE})
async def resume(campaign_id: CampaignId, ctx: CtxDep, _: CurrentAdmin) -> CampaignPublic:
    """Resume delivery (spec.suspend = false)."""
    return await _patch(ctx, campaign_id, {"spec": {"suspend": False}})


@router.post("/{campaign_id}/cancel", responses={**AUTH, **NOT_FOUND, **CONFLICT, **UNAVAILABLE})
async def cancel(campaign_id: CampaignId, ctx: CtxDep, _: CurrentAdmin) -> CampaignPublic:
    """Stop for good: messages not yet sent become cancelled (spec.cancel = true)."""
    return await _patch(ctx, campaign_id, {"spec": {"cancel": True}})


@router.delete("/{campaign_id}", status_code=204, responses={**AUTH, **NOT_FOUND, **UNAVAILABLE})
async def delete_campaign(campaign_id: CampaignId, ctx: CtxDep, admin: CurrentAdmin) -> Response:
    """Delete the Campaign resource; delivery stops, rows stay in Postgres for audit."""
    res = await _find(ctx, campaign_id)
    await asyncio.to_thread(ctx.campaigns.delete, res)
    log.info("admin %s deleted campaign %s", admin.id, campaign_id)
    return Response(status_code=204)


@router.get("/{campaign_id}/messages", responses={**AUTH, **NOT_FOUND, **UNAVAILABLE})
async def list_messages(
    campaign_id: CampaignId,
    ctx: CtxDep,
    _: CurrentAdmin,
    status: MessageStatus | None = None,
    after: Annotated[int, Query(ge=-1, le=2**31 - 1)] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MessagePagePublic:
    """Messages in seq order, optionally of one status (keyset pagination with ``after``)."""
    await _find(ctx, campaign_id)
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
