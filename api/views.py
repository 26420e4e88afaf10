"""Pure mappings between Campaign resources and the REST contract (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from notifq.api.kube import Resource
from notifq.api.schemas import (
    CampaignCreate,
    CampaignDetailPublic,
    CampaignPublic,
    CampaignStatus,
    ProgressPublic,
    QuotaPublic,
)
from notifq.api.store import DetailRow
from notifq.core.phases import REFERENCE_STATUS
from notifq.core.resource import DISPLAY_NAME_ANNOTATION, format_time

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def reference_status(phase: str | None) -> CampaignStatus:
    return cast(CampaignStatus, REFERENCE_STATUS.get(phase or "Pending", "pending"))


def spec_for(body: CampaignCreate) -> dict[str, Any]:
    """The Campaign spec for a create request."""
    spec: dict[str, Any] = {"channel": body.channel, "provider": body.provider}
    target = body.targetEmail
    if body.recipients is not None and any(isinstance(r, dict) for r in body.recipients):
        # recipients with fields: records (a plain address becomes {"to": address})
        listed = [target, *body.recipients] if target else body.recipients
        spec["recipients"] = {"records": [r if isinstance(r, dict) else {"to": r} for r in listed]}
    elif body.recipients is not None:
        # an extension of ours: the list as given, the target (if any) first
        spec["recipients"] = {"list": [target, *body.recipients] if target else body.recipients}
    elif target and body.recipientCount == 1:
        spec["recipients"] = {"list": [target]}
    elif target:
        # the reference service: the target is message 1 and counts in recipientCount
        spec["recipients"] = {"generate": {"count": body.recipientCount - 1, "include": [target]}}
    else:
        spec["recipients"] = {"generate": {"count": body.recipientCount}}
    if body.subject is not None:
        spec["subject"] = body.subject
    if body.body is not None:
        spec["body"] = body.body
    if body.html is not None:
        spec["html"] = body.html
    if body.scheduleAt is not None:
        spec["scheduleAt"] = format_time(body.scheduleAt)
    if body.rateLimit is not None:
        spec["rateLimit"] = body.rateLimit
    if body.retry is not None:
        retry = body.retry.model_dump(exclude_none=True)
        if retry:
            spec["retry"] = retry
    return spec


def expected_total(spec: Any) -> int:
    """Messages a spec asks for, before the operator stored them (duplicates included)."""
    recipients = spec.get("recipients") or {}
    if "generate" in recipients:
        gen = recipients["generate"]
        return int(gen.get("count", 0)) + len(gen.get("include") or [])
    return len(recipients.get("list") or recipients.get("records") or [])


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def updated_at(res: Resource) -> datetime:
    """Last write to the resource (spec or status), from its managedFields times."""
    meta = res.get("metadata", {})
    times = [_time(m.get("time")) for m in meta.get("managedFields") or []]
    times.append(_time(meta.get("creationTimestamp")))
    return max((t for t in times if t is not None), default=EPOCH)


def public(res: Resource) -> CampaignPublic:
    meta = res["metadata"]
    status = res.get("status") or {}
    total = status.get("total")
    return CampaignPublic(
        id=meta["uid"],
        name=(meta.get("annotations") or {}).get(DISPLAY_NAME_ANNOTATION) or meta["name"],
        resourceName=meta["name"],
        namespace=meta.get("namespace", ""),
        totalMessages=int(total) if total else expected_total(res.get("spec") or {}),
        sentCount=int(status.get("sent") or 0),
        failedCount=int(status.get("failed") or 0),
        status=reference_status(status.get("phase")),
        createdAt=_time(meta.get("creationTimestamp")) or EPOCH,
        updatedAt=updated_at(res),
    )


def progress(counts: dict[str, int], total: int) -> ProgressPublic:
    """The counters; a campaign with none (not stored yet) has everything still to send."""
    if not any(counts.values()):
        counts = {**counts, "pending": total}
    return ProgressPublic(**counts)


def detail(
    public: CampaignPublic, counts: dict[str, int], message: str, quota: Any
) -> CampaignDetailPublic:
    return CampaignDetailPublic(
        **public.model_dump(),
        progress=progress(counts, public.totalMessages),
        message=message,
        quota=QuotaPublic.model_validate(quota) if quota else None,
    )


def detail_from_row(cid: str, namespace: str, row: DetailRow) -> CampaignDetailPublic:
    """The detail of a stored campaign from the operator's copy of its status (the same
    answer the resource gives; ``updatedAt`` is when the operator last wrote the copy)."""
    created = row.created or EPOCH
    public = CampaignPublic(
        id=cid,
        name=row.display_name or row.name,
        resourceName=row.name,
        namespace=namespace,
        totalMessages=row.total,
        sentCount=row.sent,
        failedCount=row.failed,
        status=reference_status(row.phase),
        createdAt=created,
        updatedAt=max(row.updated, created),
    )
    return detail(public, row.progress, row.message, row.quota)
