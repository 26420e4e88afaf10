"""The namespaces a caller may list campaigns in (the dashboard's namespace menu)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from notifq.api.authz import Access
from notifq.api.deps import CtxDep, CurrentCaller
from notifq.api.routes.responses import AUTH
from notifq.api.schemas import NamespacesPublic

router = APIRouter(tags=["namespaces"])
PARALLEL_REVIEWS = 8


@router.get("/namespaces", responses=AUTH)
async def list_namespaces(ctx: CtxDep, caller: CurrentCaller) -> NamespacesPublic:
    """Namespaces where Kubernetes lets the caller list campaigns, sorted, and the default.

    One SubjectAccessReview for the whole cluster; if that is denied, one per namespace
    (at most 8 at once; answers cached like every other check)."""
    names = await asyncio.to_thread(ctx.campaigns.namespaces)
    if await ctx.authorize(Access(caller.identity, "list", "")):
        allowed = names
    else:
        gate = asyncio.Semaphore(PARALLEL_REVIEWS)

        async def may_list(ns: str) -> bool:
            async with gate:
                return await ctx.authorize(Access(caller.identity, "list", ns))

        answers = await asyncio.gather(*(may_list(ns) for ns in names))
        allowed = [ns for ns, ok in zip(names, answers, strict=True) if ok]
    return NamespacesPublic(items=allowed, default=ctx.settings.namespace)
