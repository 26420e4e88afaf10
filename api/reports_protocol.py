"""What every resource of the aggregated API (``reports.notifq.dev``) owes the Kubernetes API
server and kubectl: the user the front proxy names, the second access check
(SubjectAccessReview), ``metav1.Status`` answers, and list pages (``?limit=&continue=``).

The resources themselves live in :mod:`.reports` (``campaignfailures`` and the app) and
:mod:`.reports_suppressions`.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from notifq.api.authz import Access, Authorizer, Identity
from notifq.core.resource import REPORTS_GROUP, REPORTS_VERSION

log = logging.getLogger(__name__)

GROUP = REPORTS_GROUP
VERSION = REPORTS_VERSION
GROUP_VERSION = f"{GROUP}/{VERSION}"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100

T = TypeVar("T")


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


async def check(
    authorize: Authorizer,
    request: Request,
    verb: str,
    resource: str,
    namespace: str,
    name: str = "",
) -> Response | None:
    """None when the request's user may ``verb`` the ``resource`` (of :data:`GROUP`) named
    ``name`` in ``namespace`` (a collection without a name), else the answer refusing it."""
    who = identity_from_headers(request)
    if who is None:
        return status(401, "Unauthorized", "no user: requests come through the API server")
    access = Access(who, verb, namespace, name, group=GROUP, resource=resource)
    try:
        allowed = await authorize(access)
    except Exception:
        log.exception("SubjectAccessReview for %s failed", who.user)
        return status(503, "ServiceUnavailable", "cannot check access right now")
    if allowed:
        return None
    what = f'{resource}.{GROUP} "{name}"' if name else resource
    return status(
        403,
        "Forbidden",
        f'{what} is forbidden: user "{who.user}" cannot {verb} resource '
        f'"{resource}" in API group "{GROUP}" in the namespace "{namespace}"',
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


def success(code: int = 200, details: dict[str, Any] | None = None) -> JSONResponse:
    """A ``metav1.Status`` success (with ``details`` when given)."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "status": "Success"}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=code)


def encode_continue(text: str) -> str:
    """A ``continue`` token for ``text`` (URL-safe base64, unpadded)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_continue(token: str) -> str | None:
    """The text of a ``continue`` token ("" for none); None for a malformed one."""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def page_of(request: Request, after: Callable[[str], T | None]) -> tuple[T, int] | Response:
    """The page a list request asks for: where it starts (``after`` reads the ``continue``
    token, None when it is off) and its ``limit`` (1..:data:`MAX_LIMIT`), or the 400 answer."""
    start = after(request.query_params.get("continue", ""))
    try:
        limit = int(request.query_params.get("limit", DEFAULT_LIMIT))
    except ValueError:
        limit = -1
    if start is None or not 0 < limit <= MAX_LIMIT:
        return status(400, "BadRequest", f"limit must be 1..{MAX_LIMIT}; continue as given")
    return start, limit
