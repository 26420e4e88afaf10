"""The error answers routes document in OpenAPI (their ``responses=``), each written once."""

from __future__ import annotations

from typing import Any

from notifq.api.schemas import ErrorPublic

Responses = dict[int | str, dict[str, Any]]


def error(code: int, description: str) -> Responses:
    """``code`` answered with an :class:`ErrorPublic`, as ``description`` says."""
    return {code: {"model": ErrorPublic, "description": description}}


AUTH = error(401, "Missing or invalid token")
FORBIDDEN = error(403, "Kubernetes RBAC does not allow it")
UNAVAILABLE = error(503, "Kubernetes or Postgres unavailable")
THROTTLED = error(429, "Too many attempts; see Retry-After")
