"""Facts about the pod a process runs in (when it runs in one)."""

from __future__ import annotations

from pathlib import Path

SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_namespace(configured: str | None = None) -> str:
    """``configured``, else the pod's namespace, else ``default`` (outside a cluster)."""
    if configured:
        return configured
    try:
        return SA_NAMESPACE.read_text().strip()
    except OSError:
        return "default"
