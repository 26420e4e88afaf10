"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from notifq.api import store
from notifq.api.deps import CtxDep
from notifq.api.schemas import HealthPublic

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
CHECK_TIMEOUT = 3.0


@router.get("/health")
async def health() -> HealthPublic:
    """Liveness: the process serves requests."""
    return HealthPublic(status="ok")


async def _check(name: str, probe: Awaitable[object]) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as exc:
        # anonymous callers read this: the reason stays in the log
        log.warning("readiness: %s failed: %s: %s", name, type(exc).__name__, exc)
        return name, "error (see the API's log)"
    return name, "ok"


@router.get(
    "/readyz",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "A dependency is unavailable"}},
)
async def readyz(ctx: CtxDep) -> JSONResponse:
    """Readiness: Postgres, Redis and the Kubernetes API all answer."""
    results = await asyncio.gather(
        _check("database", store.ping(ctx.pool)),
        _check("redis", ctx.redis.ping()),
        _check("kubernetes", asyncio.to_thread(ctx.campaigns.ping)),
    )
    checks = dict(results)
    ok = all(v == "ok" for v in checks.values())
    body = HealthPublic(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response)
async def prometheus_metrics() -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
