"""Admin login."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request, Response

from notifq.api import metrics, security, store
from notifq.api.deps import CtxDep
from notifq.api.schemas import AdminPublic, ErrorPublic, LoginRequest, TokenPublic

log = logging.getLogger(__name__)
router = APIRouter(tags=["auth"])
BAD_CREDENTIALS = "invalid email or password"
DEVICE_COOKIE_DAYS = 180


@router.post(
    "/auth/login",
    responses={
        401: {"model": ErrorPublic, "description": "Bad credentials"},
        429: {"model": ErrorPublic, "description": "Too many attempts; see Retry-After"},
    },
)
async def login(
    body: LoginRequest, request: Request, response: Response, ctx: CtxDep
) -> TokenPublic:
    """Exchange an admin's email and password for a bearer token (24 h).

    Also sets a device cookie: later logins from this client are counted apart from
    everybody else's failures for the account (see ``ratelimit``)."""
    ip = request.client.host if request.client else "unknown"
    s = ctx.settings
    limiter = ctx.limiter
    cookie = request.cookies.get(security.DEVICE_COOKIE)
    device = security.device_nonce(cookie, body.email, s.jwt_secret)
    wait = await limiter.hit(ip, body.email, device)
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
    await limiter.succeeded(ip, body.email, device)
    metrics.LOGINS.labels("ok").inc()
    response.set_cookie(
        security.DEVICE_COOKIE,
        cookie if cookie and device else security.issue_device(body.email, s.jwt_secret),
        max_age=DEVICE_COOKIE_DAYS * 86400,
        path="/auth/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    token = security.issue_token(str(admin.id), s.jwt_secret, s.jwt_ttl_seconds)
    return TokenPublic(token=token, admin=AdminPublic(id=str(admin.id), email=admin.email))
