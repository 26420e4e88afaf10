"""Per-message reports as a Kubernetes aggregated API (``reports.notifq.dev``).

The Kubernetes API server authenticates the user (any kubeconfig identity: token,
client certificate, OIDC, exec plugin), checks RBAC for the path, and proxies the request
here over mutual TLS with its front-proxy client certificate, naming the user in
``X-Remote-User`` / ``X-Remote-Group`` / ``X-Remote-Extra-*``. This app trusts those headers
only because the TLS layer (``reports_server``) accepts no client certificate but one signed
by the front-proxy CA, and it asks the API server again (SubjectAccessReview) before it
answers: the front proxy authenticates, it is not meant to authorize for us.

One resource: ``campaignfailures``, namespaced, verb ``get``; the object named like the
Campaign holds one page of its failed recipients (``?limit=&continue=``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notifq.core.resource import FAILURES, FAILURES_KIND, REPORTS_GROUP, REPORTS_VERSION

log = logging.getLogger(__name__)

GROUP = REPORTS_GROUP
VERSION = REPORTS_VERSION
GROUP_VERSION = f"{GROUP}/{VERSION}"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class Identity:
    """The user the Kubernetes API server authenticated."""

    user: str
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_headers(cls, request: Request) -> Identity | None:
        user = request.headers.get("x-remote-user", "")
        if not user:
            return None
        groups = tuple(g for v in request.headers.getlist("x-remote-group") for g in v.split(","))
        extra: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            if key.startswith("x-remote-extra-"):
                extra.setdefault(key.removeprefix("x-remote-extra-"), []).append(value)
        return cls(user=user, groups=groups, extra=extra)


@dataclass(frozen=True)
class Access:
    """One question for the authorizer: may ``who`` ``verb`` this object?"""

    who: Identity
    verb: str
    namespace: str
    name: str


Authorizer = Callable[[Access], Awaitable[bool]]


def subject_access_reviewer(api_client: Any) -> Authorizer:
    """An authorizer that asks the Kubernetes API (SubjectAccessReview) with the API's
    own ServiceAccount (which needs ``create subjectaccessreviews``)."""
    from kubernetes import client as k8s

    api = k8s.AuthorizationV1Api(api_client)

    def review(access: Access) -> bool:
        body = k8s.V1SubjectAccessReview(
            spec=k8s.V1SubjectAccessReviewSpec(
                user=access.who.user,
                groups=list(access.who.groups),
                extra=access.who.extra or None,
                resource_attributes=k8s.V1ResourceAttributes(
                    group=GROUP,
                    version=VERSION,
                    resource=FAILURES,
                    verb=access.verb,
                    namespace=access.namespace,
                    name=access.name,
                ),
            )
        )
        answer = api.create_subject_access_review(body, _request_timeout=10)
        return bool(answer.status and answer.status.allowed)

    async def authorize(access: Access) -> bool:
        return await asyncio.to_thread(review, access)

    return authorize


def _status(code: int, reason: str, message: str) -> JSONResponse:
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


async def _campaign_id(pool: AsyncConnectionPool, namespace: str, name: str) -> Any | None:
    """The newest stored campaign of that name that was not deleted."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM campaign WHERE namespace = %s AND name = %s AND deleted_at IS NULL "
            "ORDER BY created_at DESC LIMIT 1",
            (namespace, name),
        )
        row = await cur.fetchone()
    return row[0] if row else None


async def _failed_page(
    pool: AsyncConnectionPool, cid: Any, after: int, limit: int
) -> list[tuple[int, str, int, str | None, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT seq, recipient, attempts, last_error, updated_at FROM message "
            "WHERE campaign_id = %s AND status = 'failed' AND seq > %s ORDER BY seq LIMIT %s",
            (cid, after, limit),
        )
        return [tuple(r) for r in await cur.fetchall()]


def create_reports_app(pool: AsyncConnectionPool, authorize: Authorizer) -> Starlette:
    """The aggregated API's ASGI app (discovery documents and ``campaignfailures``)."""

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
                    }
                ],
            }
        )

    async def failures(request: Request) -> Response:
        who = Identity.from_headers(request)
        if who is None:
            return _status(401, "Unauthorized", "no user: requests come through the API server")
        namespace = request.path_params["namespace"]
        name = request.path_params["name"]
        try:
            allowed = await authorize(Access(who, "get", namespace, name))
        except Exception:
            log.exception("SubjectAccessReview for %s failed", who.user)
            return _status(503, "ServiceUnavailable", "cannot check access right now")
        if not allowed:
            return _status(
                403,
                "Forbidden",
                f'{FAILURES}.{GROUP} "{name}" is forbidden: user "{who.user}" cannot get '
                f'resource "{FAILURES}" in API group "{GROUP}" in the namespace "{namespace}"',
            )
        after = _decode_continue(request.query_params.get("continue", ""))
        try:
            limit = int(request.query_params.get("limit", DEFAULT_LIMIT))
        except ValueError:
            limit = -1
        if after is None or not 0 < limit <= MAX_LIMIT:
            return _status(400, "BadRequest", f"limit must be 1..{MAX_LIMIT}; continue as given")
        cid = await _campaign_id(pool, namespace, name)
        if cid is None:
            return _status(
                404, "NotFound", f'{FAILURES}.{GROUP} "{name}" not found (no stored campaign)'
            )
        rows = await _failed_page(pool, cid, after, limit)
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if len(rows) == limit:
            metadata["continue"] = _encode_continue(rows[-1][0])
        items = [
            {
                "seq": seq,
                "recipient": recipient,
                "attempts": attempts,
                "reason": reason or "",
                "lastAttemptTime": at.isoformat() if at else None,
            }
            for seq, recipient, attempts, reason, at in rows
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
            Route("/healthz", healthy),
            Route("/livez", healthy),
            Route("/readyz", healthy),
        ]
    )
