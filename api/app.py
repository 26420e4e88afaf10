"""The application factory: clients, middleware, error handlers and routes.

``create_app(settings)`` opens Postgres, Redis and Kubernetes clients at
start-up unless they are passed in (tests pass real ones), and creates the
admin account from ``NOTIFQ_ADMIN_EMAIL`` / ``NOTIFQ_ADMIN_PASSWORD`` if set.
"""

from __future__ import annotations

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
from notifq.api import security, store
from notifq.api.context import ApiContext
from notifq.api.errors import (
    CampaignConflict,
    CampaignNotFound,
    CampaignRejected,
    KubernetesUnavailable,
)
from notifq.api.kube import CampaignClient
from notifq.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from notifq.api.routes import auth, campaigns, dashboard, health, suppressions, unsubscribe
from notifq.core.db import open_pool
from notifq.core.errors import DatabaseUnavailable, RedisUnavailable
from notifq.core.settings import ApiSettings

log = logging.getLogger(__name__)

DESCRIPTION = """REST API of notifq. Creating a campaign creates a `Campaign` resource
(the same thing `kubectl apply` creates); reads come from the resource status and
Postgres. Mutating endpoints and message lists need a bearer token from
`POST /auth/login`."""


async def ensure_admin(pool: AsyncConnectionPool, email: str, password: str) -> None:
    """Create the admin, or update its hash when the configured password changed."""
    existing = await store.admin_by_email(pool, email)
    if existing is not None and security.verify_password(password, existing.password_hash):
        return
    await store.upsert_admin(pool, email, security.hash_password(password))
    log.info("admin %s %s", email, "updated" if existing else "created")


UNAVAILABLE_MESSAGES: dict[type[Exception], str] = {
    KubernetesUnavailable: "the Kubernetes API is unavailable; try again shortly",
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

    for cls in (KubernetesUnavailable, DatabaseUnavailable, RedisUnavailable):
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


def create_app(
    settings: ApiSettings,
    *,
    pool: AsyncConnectionPool | None = None,
    redis: Redis | None = None,
    campaigns_client: CampaignClient | None = None,
) -> FastAPI:
    """The FastAPI application; clients not given are opened from ``settings`` at start-up."""

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
                await ensure_admin(p, settings.admin_email, settings.admin_password)
            app.state.ctx = ApiContext(settings, p, r, c)
            log.info("notifq API serving campaigns of namespace %s", settings.namespace)
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
