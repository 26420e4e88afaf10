"""Admin login."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request

from notifq.api import metrics, security, store
from notifq.api.deps import CtxDep
from notifq.api.schemas import AdminPublic, ErrorPublic, LoginRequest, TokenPublic

log = logging.getLogger(__name__)
router = APIRouter(tags=["auth"])
BAD_CREDENTIALS = "invalid email or password"


@router.post(
    "/auth/login",
    responses={
        401: {"model": ErrorPublic, "description": "Bad credentials"},
        429: {"model": ErrorPublic, "description": "Too many attempts; see Retry-After"},
    },
)
async def login(body: LoginRequest, request: Request, ctx: CtxDep) -> TokenPublic:
    """Exchange an admin's email and password for a bearer token (24 h)."""
    ip = request.client.host if request.client else "unknown"
    limiter = ctx.limiter
    wait = await limiter.hit(ip, body.email)
    if wait:
        metrics.LOGINS.labels("limited").inc()
        raise HTTPException(
            429, "too many login attempts; try again later", headers={"Retry-After": str(wait)}
        )
    admin = await store.admin_by_email(ctx.pool, body.email)
    ok = await asyncio.to_thread(
        security.verify_password, body.password, admin.password_hash if admin else None
    )
    if not ok or admin is None:
        metrics.LOGINS.labels("failed").inc()
        log.info("failed login from %s", ip)
        raise HTTPException(401, BAD_CREDENTIALS, headers={"WWW-Authenticate": "Bearer"})
    await limiter.succeeded(ip, body.email)
    metrics.LOGINS.labels("ok").inc()
    s = ctx.settings
    token = security.issue_token(str(admin.id), s.jwt_secret, s.jwt_ttl_seconds)
    return TokenPublic(token=token, admin=AdminPublic(id=str(admin.id), email=admin.email))
