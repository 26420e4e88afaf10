"""A namespace's suppression list in the aggregated API (``reports.notifq.dev``), for
``kubectl notifq suppressions | suppress | unsuppress`` with the kubeconfig's identity.

``suppressions`` is namespaced: ``list`` (a page of entries, ``?limit=&continue=``),
``create`` (``{"recipients": [...], "detail": "..."}``: entries with reason ``manual``)
and ``delete`` (the object named by the recipient). The API server checks RBAC on the
path; this app asks again with a SubjectAccessReview (see :mod:`.reports_protocol`). Global
entries (``*``) are not reachable here: they are the REST API's admins' business.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notifq.api.authz import Authorizer
from notifq.api.reports_protocol import (
    GROUP_VERSION,
    check,
    decode_continue,
    encode_continue,
    page_of,
    status,
    success,
)
from notifq.core import suppression

log = logging.getLogger(__name__)

RESOURCE = "suppressions"
SUPPRESSIONS_RESOURCE: dict[str, Any] = {
    "name": RESOURCE,
    "singularName": "suppression",
    "namespaced": True,
    "kind": "Suppression",
    "verbs": ["list", "create", "delete"],
}
MAX_RECIPIENTS = 10_000


def suppression_routes(
    prefix: str, pool: AsyncConnectionPool, authorize: Authorizer
) -> list[Route]:
    async def collection(request: Request) -> Response:
        namespace = request.path_params["namespace"]
        verb = "list" if request.method == "GET" else "create"
        refused = await check(authorize, request, verb, RESOURCE, namespace)
        if refused is not None:
            return refused
        if request.method == "GET":
            return await _list(request, namespace)
        try:
            body = json.loads(await request.body())
            recipients = [str(r) for r in body["recipients"]]
            detail = body.get("detail")
        except (ValueError, KeyError, TypeError):
            return status(400, "BadRequest", 'body: {"recipients": [...], "detail": "..."}')
        if not 0 < len(recipients) <= MAX_RECIPIENTS:
            return status(400, "BadRequest", f"recipients: 1..{MAX_RECIPIENTS}")
        who = request.headers.get("x-remote-user", "")
        added = await suppression.add(
            pool, namespace, recipients, "manual", detail and str(detail)[:300], f"kube:{who}"
        )
        log.info("suppressions: %s added %d entries in %s", who, added, namespace)
        return success(201, {"added": added})

    async def _list(request: Request, namespace: str) -> Response:
        page = page_of(request, decode_continue)
        if isinstance(page, Response):
            return page
        after, limit = page
        rows = await suppression.page(pool, namespace, after=after, limit=limit)
        metadata: dict[str, Any] = {}
        if len(rows) == limit:
            metadata["continue"] = encode_continue(rows[-1].recipient)
        items = [
            {"recipient": r.recipient, "reason": r.reason, "detail": r.detail,
             "source": r.source, "createdAt": r.created_at.isoformat()}
            for r in rows
        ]  # fmt: skip
        return JSONResponse(
            {"kind": "SuppressionList", "apiVersion": GROUP_VERSION, "metadata": metadata,
             "items": items}
        )  # fmt: skip

    async def one(request: Request) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        refused = await check(authorize, request, "delete", RESOURCE, namespace, name)
        if refused is not None:
            return refused
        if not await suppression.remove(pool, namespace, name):
            return status(404, "NotFound", f'{RESOURCE} "{name}" not found')
        return success()

    base = prefix + f"/namespaces/{{namespace}}/{RESOURCE}"
    return [
        Route(base, collection, methods=["GET", "POST"]),
        Route(base + "/{name}", one, methods=["DELETE"]),
    ]
