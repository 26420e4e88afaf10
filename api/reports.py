"""Per-message reports as a Kubernetes aggregated API (``reports.notifq.dev``).

The Kubernetes API server authenticates the user (any kubeconfig identity: token,
client certificate, OIDC, exec plugin), checks RBAC for the path, and proxies the request
here over mutual TLS with its front-proxy client certificate, naming the user in
``X-Remote-User`` / ``X-Remote-Group`` / ``X-Remote-Extra-*``. This app trusts those headers
only because the TLS layer (``reports_server``) accepts no client certificate but one signed
by the front-proxy CA, and it asks the API server again (SubjectAccessReview) before it
answers: the front proxy authenticates, it is not meant to authorize for us.

Resources: ``campaignfailures``, namespaced, verb ``get``; the object named like the
Campaign holds one page of its failed recipients (``?limit=&continue=``). And
``suppressions`` (:mod:`.reports_suppressions`): a namespace's suppression list.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import replace
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notifq.api import store
from notifq.api.authz import Access, Authorizer, Identity
from notifq.core.errors import DatabaseUnavailable
from notifq.core.resource import FAILURES, FAILURES_KIND, REPORTS_GROUP, REPORTS_VERSION

log = logging.getLogger(__name__)

GROUP = REPORTS_GROUP
VERSION = REPORTS_VERSION
GROUP_VERSION = f"{GROUP}/{VERSION}"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def identity_from_headers(request: Request) -> Identity | None:
    """The user the front proxy names (``X-Remote-*``); None without one."""
    user = request.headers.get("x-remote-user", "")
    if not user:
        return None
    groups = tuple(g for v in request.headers.getlist("x-remote-group") for g in v.split(","))
    extra: dict[str, list[str]] = {}
    for key, value in request.headers.items():
        if key.startswith("x-remote-extra-"):
            extra.setdefault(key.removeprefix("x-remote-extra-"), []).append(value)
    return Identity(user=user, groups=groups, extra=extra)


ANYONE = Identity("")
"""A placeholder: :func:`check` puts the request's user into the access it is given."""


async def check(authorize: Authorizer, request: Request, access: Access) -> Response | None:
    """None when the request's user may do ``access``, else the answer refusing it."""
    who = identity_from_headers(request)
    if who is None:
        return status(401, "Unauthorized", "no user: requests come through the API server")
    access = replace(access, who=who)
    try:
        allowed = await authorize(access)
    except Exception:
        log.exception("SubjectAccessReview for %s failed", who.user)
        return status(503, "ServiceUnavailable", "cannot check access right now")
    if allowed:
        return None
    what = f'{access.resource}.{GROUP} "{access.name}"' if access.name else access.resource
    return status(
        403,
        "Forbidden",
        f'{what} is forbidden: user "{who.user}" cannot {access.verb} resource '
        f'"{access.resource}" in API group "{GROUP}" in the namespace "{access.namespace}"',
    )


def status(code: int, reason: str, message: str) -> JSONResponse:
    """A ``metav1.Status`` failure, as kubectl expects from any API server."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return JSONResponse(body, status_code=code)


async def _database_unavailable(_: Request, exc: Exception) -> Response:
    """Any route's database trouble (the details go to the log, never to the caller)."""
    log.warning("reports: database unavailable: %s", exc)
    return status(503, "ServiceUnavailable", "the database is unavailable; try again")


def _encode_continue(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def _decode_continue(token: str) -> int | None:
    if not token:
        return -1
    try:
        padded = token + "=" * (-len(token) % 4)
        seq = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        return None
    return seq if seq >= -1 else None


def create_reports_app(pool: AsyncConnectionPool, authorize: Authorizer) -> Starlette:
    """The aggregated API's ASGI app (discovery documents, ``campaignfailures`` and
    ``suppressions``)."""
    from notifq.api.reports_suppressions import SUPPRESSIONS_RESOURCE, suppression_routes

    async def group(_: Request) -> Response:
        version = {"groupVersion": GROUP_VERSION, "version": VERSION}
        return JSONResponse(
            {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": GROUP,
                "versions": [version],
                "preferredVersion": version,
            }
        )

    async def resources(_: Request) -> Response:
        return JSONResponse(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": GROUP_VERSION,
                "resources": [
                    {
                        "name": FAILURES,
                        "singularName": "campaignfailures",
                        "namespaced": True,
                        "kind": FAILURES_KIND,
                        "verbs": ["get"],
                    },
                    SUPPRESSIONS_RESOURCE,
                ],
            }
        )

    async def failures(request: Request) -> Response:
        namespace = request.path_params["namespace"]
        name = request.path_params["name"]
        refused = await check(
            authorize,
            request,
            Access(ANYONE, "get", namespace, name, group=GROUP, resource=FAILURES),
        )
        if refused is not None:
            return refused
        after = _decode_continue(request.query_params.get("continue", ""))
        try:
            limit = int(request.query_params.get("limit", DEFAULT_LIMIT))
        except ValueError:
            limit = -1
        if after is None or not 0 < limit <= MAX_LIMIT:
            return status(400, "BadRequest", f"limit must be 1..{MAX_LIMIT}; continue as given")
        try:
            cid = await store.campaign_id_by_name(pool, namespace, name)
            rows = [] if cid is None else await store.messages(pool, cid, "failed", after, limit)
        except DatabaseUnavailable as exc:
            log.warning("reports: database unavailable: %s", exc)
            return status(503, "ServiceUnavailable", "the database is unavailable; try again")
        if cid is None:
            return status(
                404, "NotFound", f'{FAILURES}.{GROUP} "{name}" not found (no stored campaign)'
            )
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if len(rows) == limit:
            metadata["continue"] = _encode_continue(rows[-1].seq)
        items = [
            {
                "seq": r.seq,
                "recipient": r.recipient,
                "attempts": r.attempts,
                "reason": r.last_error or "",
                "lastAttemptTime": r.updated_at.isoformat() if r.updated_at else None,
            }
            for r in rows
        ]
        return JSONResponse(
            {
                "kind": FAILURES_KIND,
                "apiVersion": GROUP_VERSION,
                "metadata": metadata,
                "items": items,
            }
        )

    async def healthy(_: Request) -> Response:
        return Response("ok", media_type="text/plain")

    prefix = f"/apis/{GROUP}/{VERSION}"
    return Starlette(
        routes=[
            Route(f"/apis/{GROUP}", group),
            Route(prefix, resources),
            Route(prefix + f"/namespaces/{{namespace}}/{FAILURES}/{{name}}", failures),
            *suppression_routes(prefix, pool, authorize),
            Route("/healthz", healthy),
            Route("/livez", healthy),
            Route("/readyz", healthy),
        ],
        exception_handlers={DatabaseUnavailable: _database_unavailable},
    )
