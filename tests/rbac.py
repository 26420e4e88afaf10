"""RBAC for the API's users on the test bed: what Kubernetes lets a notifq user do.

The REST API asks Kubernetes (SubjectAccessReview) for every action, so a test gives its
users rights exactly as a cluster admin would: Roles and RoleBindings (or cluster-wide
ones) for the user or group names the API's accounts and ID tokens carry."""

from __future__ import annotations

import json
import uuid
from typing import Any

CAMPAIGN_VERBS = ["create", "get", "list", "watch", "patch", "update", "delete"]
ADMINS_GROUP = "notifq-test-admins"
"""Group of the e2e tests' default API account: every campaign right, cluster-wide."""


def rules(verbs: list[str], *, failures: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"apiGroups": ["notifq.dev"], "resources": ["campaigns"], "verbs": verbs}
    ]
    if failures:  # recipients: failed ones, and the suppression list
        out.append(
            {"apiGroups": ["reports.notifq.dev"], "resources": ["campaignfailures"],
             "verbs": ["get"]}
        )  # fmt: skip
        out.append(
            {"apiGroups": ["reports.notifq.dev"], "resources": ["suppressions"],
             "verbs": ["list", "create", "delete"]}
        )  # fmt: skip
    return out


def subject(user: str | None = None, group: str | None = None) -> dict[str, str]:
    if user is not None:
        return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
    assert group is not None
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}


def grant(
    control_plane: Any,
    namespace: str | None,
    verbs: list[str],
    *,
    user: str | None = None,
    group: str | None = None,
    failures: bool = False,
) -> None:
    """Let ``user`` (or ``group``) ``verbs`` Campaigns in ``namespace`` (None: cluster-wide)."""
    name = f"notifq-test-{uuid.uuid4().hex[:8]}"
    kind = "Role" if namespace else "ClusterRole"
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    objects = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
         "rules": rules(verbs, failures=failures)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": f"{kind}Binding",
         "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
         "subjects": [subject(user, group)]},
    ]  # fmt: skip
    control_plane.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )
