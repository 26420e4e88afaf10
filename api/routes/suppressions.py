"""The suppression list: view, add and remove entries.

Kubernetes decides who may (a SubjectAccessReview for the caller, as for every REST
action): ``list``/``create``/``delete`` on ``suppressions.reports.notifq.dev`` in the
namespace, the same rights ``kubectl notifq suppressions|suppress|unsuppress`` need;
the ``*`` list (every namespace) needs them cluster-wide.

Entries come from SES feedback (hard bounces, complaints), one-click unsubscribes and
these routes (``manual``). ``namespace`` is a namespace's name or ``*`` (every
namespace); it defaults to the API's own.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from notifq.api.deps import Caller, CtxDep, CurrentCaller, require
from notifq.api.routes.responses import AUTH, error
from notifq.api.schemas import (
    SuppressionAdded,
    SuppressionCreate,
    SuppressionPagePublic,
    SuppressionPublic,
)
from notifq.core import suppression
from notifq.core.resource import REPORTS_GROUP

router = APIRouter(prefix="/suppressions", tags=["suppressions"])
NOT_FOUND = error(404, "No such entry")
_NAMESPACE = re.compile(r"^(\*|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$")


SUPPRESSIONS = "suppressions"


async def _namespace(ctx: CtxDep, caller: Caller, verb: str, value: str | None) -> str:
    """The namespace asked for (default: the API's), once the caller may ``verb`` its list."""
    namespace = value or ctx.settings.namespace
    if not _NAMESPACE.match(namespace):
        raise HTTPException(400, "namespace: a namespace name or '*'")
    where = "" if namespace == "*" else namespace  # '*': rights in every namespace
    await require(ctx, caller, verb, where, group=REPORTS_GROUP, resource=SUPPRESSIONS)
    return namespace


@router.get("", responses=AUTH)
async def list_suppressions(
    ctx: CtxDep,
    caller: CurrentCaller,
    namespace: str | None = None,
    recipient: str | None = None,
    after: str = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SuppressionPagePublic:
    """Entries of one namespace (or ``*``) in recipient order, or the one of ``recipient``."""
    ns = await _namespace(ctx, caller, "list", namespace)
    rows = await suppression.page(ctx.pool, ns, after=after, limit=limit, recipient=recipient)
    items = [
        SuppressionPublic(
            namespace=r.namespace,
            recipient=r.recipient,
            reason=r.reason,  # type: ignore[arg-type]
            detail=r.detail,
            source=r.source,
            createdAt=r.created_at,
        )
        for r in rows
    ]
    return SuppressionPagePublic(
        items=items, nextAfter=items[-1].recipient if len(items) == limit else None
    )


@router.post("", status_code=201, responses=AUTH)
async def add_suppressions(
    ctx: CtxDep, caller: CurrentCaller, body: SuppressionCreate
) -> SuppressionAdded:
    """Suppress recipients by hand (reason ``manual``)."""
    ns = await _namespace(ctx, caller, "create", body.namespace)
    added = await suppression.add(
        ctx.pool, ns, body.recipients, "manual", body.detail, source=f"user:{caller.name}"
    )
    return SuppressionAdded(added=added)


@router.delete("/{namespace}/{recipient}", status_code=204, responses={**AUTH, **NOT_FOUND})
async def remove_suppression(
    ctx: CtxDep, caller: CurrentCaller, namespace: str, recipient: str
) -> Response:
    """Take a recipient off the list (they are sent to again)."""
    ns = await _namespace(ctx, caller, "delete", namespace)
    if not await suppression.remove(ctx.pool, ns, recipient):
        raise HTTPException(404, "no such suppression entry")
    return Response(status_code=204)
