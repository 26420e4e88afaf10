"""Helm post-renderer of the cluster tests: the mock provider's delivery log on a hostPath.

Reads the rendered chart on stdin and gives every worker Deployment a hostPath
volume (argv[1], made world-writable by the test) with ``NOTIFQ_MOCK_LOG_DIR``
set to a directory per pod, so the test can read on the host every send the
mock accepted, by pod, and check it against Postgres. Test instrumentation only:
the chart itself is unchanged.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml


def instrument(doc: dict[str, Any], host_dir: str) -> None:
    labels = doc.get("metadata", {}).get("labels", {})
    if doc.get("kind") != "Deployment" or labels.get("app.kubernetes.io/component") != "worker":
        return
    pod = doc["spec"]["template"]["spec"]
    pod.setdefault("volumes", []).append(
        {"name": "mock-log", "hostPath": {"path": host_dir, "type": "Directory"}}
    )
    for container in pod["containers"]:
        container.setdefault("env", []).extend(
            [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NOTIFQ_MOCK_LOG_DIR", "value": "/mock-log/$(POD_NAME)"},
            ]
        )
        container.setdefault("volumeMounts", []).append(
            {"name": "mock-log", "mountPath": "/mock-log"}
        )


def main() -> None:
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    for doc in docs:
        instrument(doc, sys.argv[1])
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
