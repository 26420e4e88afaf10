"""The Campaign resource's coordinates and the keys every component agrees on.

One home for the API group, version, plural and kind, and for the annotation and
label keys that the operator, the API, the kubectl plugin and the tools read or
write, so a rename is one edit.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

GROUP = "notifq.dev"
VERSION = "v1alpha1"
PLURAL = "campaigns"
KIND = "Campaign"

REPORTS_GROUP = "reports.notifq.dev"
"""The aggregated API the API pod serves through the Kubernetes API server."""
REPORTS_VERSION = "v1alpha1"
FAILURES = "campaignfailures"
"""Reports resource: a Campaign's failed recipients, one page per ``get``."""
FAILURES_KIND = "CampaignFailures"
API_VERSION = f"{GROUP}/{VERSION}"
POLICY_PLURAL = "notifqpolicies"
"""Cluster-scoped NotifqPolicy: the platform team's limits per namespace (fair use)."""
RECIPIENTS_LABEL = f"{GROUP}/recipients"
"""A ConfigMap a Campaign's ``configMapRef`` names must carry this label set to ``"true"``:
whoever may label ConfigMaps in the namespace consents to its contents being mailed."""

RETRY_ANNOTATION = f"{GROUP}/retry-failed"
"""Set to a new value to send a campaign's failed messages again."""
DISPLAY_NAME_ANNOTATION = f"{GROUP}/display-name"
REQUESTED_BY_ANNOTATION = f"{GROUP}/requested-by"
WORKER_POOL_LABEL = f"{GROUP}/worker-pool"
CREATED_BY_LABEL = "app.kubernetes.io/created-by"

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""RFC 3339 in UTC with a ``Z``, as Kubernetes writes times."""


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(TIME_FORMAT)


def retry_token() -> str:
    """A fresh value for :data:`RETRY_ANNOTATION` (time-ordered, never repeated)."""
    return f"{int(time.time())}-{secrets.token_hex(4)}"


def retry_patch(token: str) -> dict[str, Any]:
    """The merge patch that asks for a retry of the failed messages."""
    return {"metadata": {"annotations": {RETRY_ANNOTATION: token}}}


def manifest(name: str, namespace: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """A Campaign resource."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "spec": spec,
    }
