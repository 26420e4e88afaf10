"""The application factory: clients, middleware, error handlers and routes.

``create_app(settings)`` opens Postgres, Redis and Kubernetes clients at
start-up unless they are passed in (tests pass real ones), and creates the
admin account from ``NOTIFQ_ADMIN_EMAIL`` / ``NOTIFQ_ADMIN_PASSWORD`` if set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from starlette.exceptions import HTTPException as StarletteHTTPException

import notifq
from notifq.api import accounts, security
from notifq.api.account_cache import AccountCache
from notifq.api.authz import Authorizer, subject_access_reviewer
from notifq.api.context import ApiContext
from notifq.api.errors import (
    CampaignConflict,
    CampaignNotFound,
    CampaignRejected,
    Forbidden,
    IssuerUnavailable,
    KubernetesUnavailable,
)
from notifq.api.kube import CampaignClient
from notifq.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from notifq.api.oidc import OidcVerifier
from notifq.api.routes import (
    auth,
    campaigns,
    dashboard,
    health,
    namespaces,
    suppressions,
    unsubscribe,
)
from notifq.core.db import libpq_url, open_pool
from notifq.core.errors import DatabaseUnavailable, RedisUnavailable
from notifq.core.settings import ApiSettings

log = logging.getLogger(__name__)

DESCRIPTION = """REST API of notifq. Creating a campaign creates a `Campaign` resource
(the same thing `kubectl apply` creates); reads come from the resource status and
Postgres. Every endpoint on campaigns needs a bearer token (from `POST /auth/login`, or
an ID token of the configured OIDC issuer) naming a Kubernetes user, and Kubernetes RBAC
decides, per namespace, what that user may do (SubjectAccessReview)."""


async def ensure_admin(
    pool: AsyncConnectionPool,
    email: str,
    password: str,
    kube_user: str | None = None,
    kube_groups: list[str] | None = None,
) -> None:
    """Create the account, or update it when the configured password or Kubernetes
    identity changed (a new password revokes the account's tokens)."""
    groups = list(kube_groups or [])
    accounts.check_kube_names(kube_user, groups)
    existing = await accounts.by_email(pool, email)
    same_password = existing is not None and security.verify_password(
        password, existing.password_hash
    )
    if existing is not None and same_password:
        if (existing.kube_user, existing.kube_groups) == (kube_user, groups):
            return
        password_hash = existing.password_hash  # only the identity changed: tokens stay
    else:
        password_hash = security.hash_password(password)
    await accounts.upsert(pool, email, password_hash, kube_user, groups)
    log.info("admin %s %s", email, "updated" if existing else "created")


UNAVAILABLE_MESSAGES: dict[type[Exception], str] = {
    KubernetesUnavailable: "the Kubernetes API is unavailable; try again shortly",
    IssuerUnavailable: "the identity provider (OIDC issuer) is unavailable; try again shortly",
    DatabaseUnavailable: "the database is unavailable; try again shortly",
    RedisUnavailable: "the queue (Redis) is unavailable; try again shortly",
}


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path")]
        parts.append(f"{'.'.join(loc) or 'body'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo the input back: a login's password would be in it.
        detail = [
            {"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg")), "type": e["type"]}
            for e in exc.errors()
        ]
        return _error(400, _validation_message(list(exc.errors())), detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        resp = _error(exc.status_code, str(exc.detail))
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        return resp

    @app.exception_handler(CampaignNotFound)
    async def not_found(_: Request, exc: CampaignNotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(CampaignRejected)
    async def rejected(_: Request, exc: CampaignRejected) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(CampaignConflict)
    async def conflict(_: Request, exc: CampaignConflict) -> JSONResponse:
        return _error(409, str(exc))

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        # the details (hosts, users, driver messages) go to the log, never to the caller
        log.warning("dependency unavailable: %s", exc)
        return _error(503, UNAVAILABLE_MESSAGES.get(type(exc), "a dependency is unavailable"))

    @app.exception_handler(Forbidden)
    async def forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return _error(403, str(exc))

    for cls in (KubernetesUnavailable, IssuerUnavailable, DatabaseUnavailable, RedisUnavailable):
        app.add_exception_handler(cls, unavailable)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema with validation errors documented as our 400 ErrorPublic."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    error_ref = {"$ref": "#/components/schemas/ErrorPublic"}
    for path in schema.get("paths", {}).values():
        for op in path.values():
            responses = op.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault(
                    "400",
                    {
                        "description": "Invalid request",
                        "content": {"application/json": {"schema": error_ref}},
                    },
                )
            responses.setdefault(
                "413",
                {
                    "description": "Request body too large",
                    "content": {"application/json": {"schema": error_ref}},
                },
            )
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    app.openapi_schema = schema
    return schema


def oidc_verifier(settings: ApiSettings) -> OidcVerifier | None:
    """The ID-token verifier the settings ask for, if any."""
    if not settings.oidc_issuer_url or not settings.oidc_client_id:
        return None
    return OidcVerifier(
        issuer=settings.oidc_issuer_url,
        client_id=settings.oidc_client_id,
        username_claim=settings.oidc_username_claim,
        username_prefix=settings.oidc_username_prefix,
        groups_claim=settings.oidc_groups_claim,
        groups_prefix=settings.oidc_groups_prefix,
        jwks_seconds=settings.oidc_jwks_seconds,
    )


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(
    settings: ApiSettings,
    *,
    pool: AsyncConnectionPool | None = None,
    redis: Redis | None = None,
    campaigns_client: CampaignClient | None = None,
    authorize: Authorizer | None = None,
) -> FastAPI:
    """The FastAPI application; clients not given are opened from ``settings`` at start-up
    (``authorize`` defaults to SubjectAccessReviews through the campaigns client's
    Kubernetes connection)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            p = pool
            if p is None:
                p = await open_pool(settings.database_url, max_size=10)
                stack.push_async_callback(p.close)
            r = redis
            if r is None:
                r = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
                stack.push_async_callback(r.aclose)
            c = campaigns_client
            if c is None:
                c = CampaignClient.from_environment(settings.namespace)
                stack.callback(c.close)
            if settings.admin_email and settings.admin_password:
                await ensure_admin(
                    p,
                    settings.admin_email,
                    settings.admin_password,
                    settings.admin_kube_user,
                    settings.admin_kube_groups,
                )
            a = authorize or subject_access_reviewer(c.api_client, settings.authz_cache_seconds)
            kept = AccountCache(settings.account_cache_seconds)
            listener = asyncio.create_task(kept.listen(libpq_url(settings.database_url)))
            stack.push_async_callback(_stop, listener)
            app.state.ctx = ApiContext(settings, p, r, c, a, oidc_verifier(settings), accounts=kept)
            log.info("notifq API; default namespace %s", settings.namespace)
            yield

    app = FastAPI(
        title="notifq",
        version=notifq.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    _install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(campaigns.router)
    app.include_router(namespaces.router)
    app.include_router(health.router)
    app.include_router(suppressions.router)
    app.include_router(unsubscribe.router)
    dashboard.mount(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Total-Count"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
