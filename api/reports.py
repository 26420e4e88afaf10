"""Per-message reports as a Kubernetes aggregated API (``reports.notifq.dev``).

The Kubernetes API server authenticates the user (any kubeconfig identity: token,
client certificate, OIDC, exec plugin), checks RBAC for the path, and proxies the request
here over mutual TLS with its front-proxy client certificate, naming the user in
``X-Remote-User`` / ``X-Remote-Group`` / ``X-Remote-Extra-*``. This app trusts those headers
only because the TLS layer (``reports_server``) accepts no client certificate but one signed
by the front-proxy CA, and it asks the API server again (SubjectAccessReview) before it
answers: the front proxy authenticates, it is not meant to authorize for us
(:mod:`.reports_protocol` holds that part, the Status answers and the list pages).

Resources: ``campaignfailures``, namespaced, verb ``get``; the object named like the
Campaign holds one page of its failed recipients (``?limit=&continue=``). And
``suppressions`` (:mod:`.reports_suppressions`): a namespace's suppression list.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notifq.api import store
from notifq.api.authz import Authorizer
from notifq.api.reports_protocol import (
    GROUP,
    GROUP_VERSION,
    VERSION,
    check,
    decode_continue,
    encode_continue,
    page_of,
    status,
)
from notifq.api.reports_suppressions import SUPPRESSIONS_RESOURCE, suppression_routes
from notifq.core.errors import DatabaseUnavailable
from notifq.core.resource import FAILURES, FAILURES_KIND

log = logging.getLogger(__name__)


async def _database_unavailable(_: Request, exc: Exception) -> Response:
    """Any route's database trouble (the details go to the log, never to the caller)."""
    log.warning("reports: database unavailable: %s", exc)
    return status(503, "ServiceUnavailable", "the database is unavailable; try again")


def _encode_continue(seq: int) -> str:
    """The ``continue`` token of the page after the message ``seq``."""
    return encode_continue(str(seq))


def _decode_continue(token: str) -> int | None:
    """The ``seq`` a page starts after (-1: the first page); None for a bad token."""
    if not token:
        return -1
    text = decode_continue(token)
    if text is None:
        return None
    try:
        seq = int(text)
    except ValueError:
        return None
    return seq if seq >= -1 else None


def create_reports_app(pool: AsyncConnectionPool, authorize: Authorizer) -> Starlette:
    """The aggregated API's ASGI app (discovery documents, ``campaignfailures`` and
    ``suppressions``)."""

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
        refused = await check(authorize, request, "get", FAILURES, namespace, name)
        if refused is not None:
            return refused
        page = page_of(request, _decode_continue)
        if isinstance(page, Response):
            return page
        after, limit = page
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
