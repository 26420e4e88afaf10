"""Login of local accounts, who the caller is, and password changes."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request, Response

from notifq.api import accounts, metrics, security
from notifq.api.deps import CtxDep, CurrentCaller, client_ip, too_many
from notifq.api.routes.responses import AUTH, THROTTLED, error
from notifq.api.schemas import (
    AdminPublic,
    IdentityPublic,
    LoginRequest,
    PasswordChange,
    TokenPublic,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["auth"])
BAD_CREDENTIALS = "invalid email or password"
DEVICE_COOKIE_DAYS = 180


@router.post(
    "/auth/login",
    responses={**error(401, "Bad credentials"), **THROTTLED},
)
async def login(
    body: LoginRequest, request: Request, response: Response, ctx: CtxDep
) -> TokenPublic:
    """Exchange an admin's email and password for a bearer token (24 h).

    Also sets a device cookie: later logins from this client are counted apart from
    everybody else's failures for the account (see ``ratelimit``)."""
    ip = client_ip(request)
    s = ctx.settings
    limiter = ctx.limiter
    cookie = request.cookies.get(security.DEVICE_COOKIE)
    device = security.device_nonce(cookie, body.email, s.jwt_secret)
    wait = await limiter.hit(ip, body.email, device)
    if wait:
        metrics.LOGINS.labels("limited").inc()
        raise too_many("login attempts", wait)
    admin = await accounts.by_email(ctx.pool, body.email)
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
    token = security.issue_token(
        str(admin.id), s.jwt_secret, s.jwt_ttl_seconds, version=admin.token_version
    )
    return TokenPublic(token=token, admin=AdminPublic(id=str(admin.id), email=admin.email))


@router.get("/auth/me", responses=AUTH)
async def me(caller: CurrentCaller) -> IdentityPublic:
    """The caller's Kubernetes identity (what every action is authorized for)."""
    who = caller.identity
    email = caller.account.email if caller.account is not None else None
    return IdentityPublic(user=who.user, groups=list(who.groups), email=email)


@router.post(
    "/auth/password",
    status_code=204,
    responses={**AUTH, **error(400, "Wrong current or unfit new password"), **THROTTLED},
)
async def change_password(
    body: PasswordChange, request: Request, ctx: CtxDep, caller: CurrentCaller
) -> Response:
    """Change the caller's own password; every token of the account (this one too) stops
    working at once, so sign in again. Wrong current passwords count in the login limiter
    (a stolen token buys no more password guesses than the login form)."""
    admin = caller.account
    if admin is None:
        raise HTTPException(400, "OIDC users have no password here")
    ip = client_ip(request)
    wait = await ctx.limiter.hit(ip, admin.email)
    if wait:
        raise too_many("attempts", wait)
    ok = await asyncio.to_thread(
        security.verify_password, body.currentPassword, admin.password_hash
    )
    if not ok:
        raise HTTPException(400, "the current password is wrong")
    await ctx.limiter.succeeded(ip, admin.email)
    try:
        new_hash = await asyncio.to_thread(security.hash_password, body.newPassword)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    await accounts.set_password(ctx.pool, admin.id, new_hash)
    ctx.accounts.forget(admin.id)  # this replica at once, before its notification arrives
    log.info("account %s changed its password; its tokens are revoked", admin.email)
    return Response(status_code=204)
