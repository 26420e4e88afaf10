"""Dependencies of the routes, as ``Annotated`` aliases: who calls (a local account's
token or an OIDC ID token, each mapped to a Kubernetes identity), and the checks every
action makes with Kubernetes before it happens."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from notifq.api import oidc, security
from notifq.api.accounts import AdminRow
from notifq.api.authz import Access, Identity
from notifq.api.context import ApiContext
from notifq.api.errors import CampaignNotFound, Forbidden
from notifq.core.resource import GROUP, PLURAL

log = logging.getLogger(__name__)
bearer = HTTPBearer(
    auto_error=False,
    description="A token from POST /auth/login, or an ID token of the configured OIDC issuer",
)


async def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


CtxDep = Annotated[ApiContext, Depends(get_ctx)]


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the Kubernetes identity every action is checked for, and
    the local account behind it (None for an OIDC user)."""

    identity: Identity
    account: AdminRow | None = None

    @property
    def name(self) -> str:
        return self.account.email if self.account is not None else self.identity.user


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(ctx: ApiContext, token: str) -> Caller:
    """The caller a bearer token names; 401 for any token that is not valid and current.

    A token claiming the configured OIDC issuer is verified against the issuer's keys
    (RS256/ES256 only); any other must be ours (HS256), name an existing account and carry
    its current token version (a changed password or a removed account revokes every
    token at once: the row is read, or kept only while its changes are heard, see
    ``account_cache``)."""
    verifier = ctx.oidc
    if verifier is not None and oidc.unverified_issuer(token) == verifier.issuer:
        try:
            identity = await asyncio.to_thread(verifier.verify, token)
        except security.InvalidToken as exc:
            raise _unauthorized("invalid or expired token") from exc
        return Caller(identity)
    try:
        sub, version = security.decode_token(token, ctx.settings.jwt_secret)
        admin_id = uuid.UUID(sub)
    except (security.InvalidToken, ValueError) as exc:
        raise _unauthorized("invalid or expired token") from exc
    admin = await ctx.accounts.by_id(ctx.pool, admin_id)
    if admin is None or admin.token_version != version:
        raise _unauthorized("invalid or expired token")
    return Caller(admin.identity(), admin)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def current_caller(ctx: CtxDep, credentials: Credentials) -> Caller:
    """The authenticated caller; 401 without a token."""
    if credentials is None:
        raise _unauthorized("authentication required")
    return await authenticate(ctx, credentials.credentials)


async def optional_caller(ctx: CtxDep, credentials: Credentials) -> Caller | None:
    """The caller if a token was given (a bad token is still 401), else None."""
    if credentials is None:
        return None
    return await authenticate(ctx, credentials.credentials)


CurrentCaller = Annotated[Caller, Depends(current_caller)]
MaybeCaller = Annotated[Caller | None, Depends(optional_caller)]


async def require(
    ctx: ApiContext,
    caller: Caller,
    verb: str,
    namespace: str,
    name: str = "",
    *,
    group: str = GROUP,
    resource: str = PLURAL,
) -> None:
    """Ask Kubernetes whether ``caller`` may ``verb`` campaigns (or ``group``/``resource``)
    in ``namespace`` (named ``name``); :class:`Forbidden` (403) when not."""
    access = Access(caller.identity, verb, namespace, name, group=group, resource=resource)
    if not await ctx.authorize(access):
        log.info("denied: %s", access.describe())
        raise Forbidden(f"forbidden: {access.describe()}")


async def admit_anonymous(ctx: ApiContext, request: Request, namespace: str) -> None:
    """Let an anonymous read through, or refuse it: 401 unless anonymous reads are on and
    it is for the default namespace; 429 + Retry-After past the per-address limit."""
    s = ctx.settings
    if not s.anonymous_reads:
        raise _unauthorized("authentication required")
    if namespace != s.namespace:
        raise _unauthorized("authentication required for this namespace")
    wait = await ctx.anonymous_limiter.hit(client_ip(request))
    if wait:
        raise too_many("anonymous requests", wait)


def client_ip(request: Request) -> str:
    """The address a request came from (what the rate limits count by)."""
    return request.client.host if request.client else "unknown"


def too_many(what: str, wait: int) -> HTTPException:
    """429: too many ``what``; ``Retry-After`` says in how many seconds to try again."""
    return HTTPException(
        429, f"too many {what}; try again later", headers={"Retry-After": str(wait)}
    )


async def campaign_id(campaign_id: str) -> uuid.UUID:
    """The path's campaign id; anything that is not a UUID names no campaign (404)."""
    try:
        return uuid.UUID(campaign_id)
    except ValueError as exc:
        raise CampaignNotFound(f"campaign {campaign_id[:64]!r} not found") from exc


CampaignId = Annotated[uuid.UUID, Depends(campaign_id)]
