"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from notifq.api import security, store
from notifq.api.context import ApiContext
from notifq.api.errors import CampaignNotFound
from notifq.api.schemas import AdminPublic

bearer = HTTPBearer(auto_error=False, description="A token from POST /auth/login")


async def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


CtxDep = Annotated[ApiContext, Depends(get_ctx)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def current_admin(
    ctx: CtxDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> AdminPublic:
    """The admin the bearer token names; 401 for any token that is not valid and ours."""
    if credentials is None:
        raise _unauthorized("authentication required")
    try:
        sub = security.decode_token(credentials.credentials, ctx.settings.jwt_secret)
        admin_id = uuid.UUID(sub)
    except (security.InvalidToken, ValueError) as exc:
        raise _unauthorized("invalid or expired token") from exc
    admin = await store.admin_by_id(ctx.pool, admin_id)
    if admin is None:
        raise _unauthorized("invalid or expired token")
    return AdminPublic(id=str(admin.id), email=admin.email)


CurrentAdmin = Annotated[AdminPublic, Depends(current_admin)]


async def campaign_id(campaign_id: str) -> uuid.UUID:
    """The path's campaign id; anything that is not a UUID names no campaign (404)."""
    try:
        return uuid.UUID(campaign_id)
    except ValueError as exc:
        raise CampaignNotFound(f"campaign {campaign_id[:64]!r} not found") from exc


CampaignId = Annotated[uuid.UUID, Depends(campaign_id)]
