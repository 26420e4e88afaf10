"""`helm template | kubectl apply` (what Tilt and Argo CD do) twice: pods started after
the second render must still log in to the Postgres the first render initialised."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from cluster_client import CHART, KIND_VALUES, Kube, wait_until

NS = "tmpl"
RELEASE = "notifq-t"


def render_and_apply(kube: Kube) -> None:
    rendered = kube.helm(
        "template", RELEASE, str(CHART), "-n", NS, "-f", str(KIND_VALUES), "--kube-version=v1.35.4",
        "--skip-tests",
        "--set", "api.service.type=ClusterIP",
        # the release of test_release owns the cluster-wide APIService; a second one here
        # would point it into this namespace, which the test deletes
        "--set", "api.reports.enabled=false",
        # one pod each is enough to show the logins, and cheaper on a busy node
        "--set", "operator.replicas=1", "--set", "worker.replicas=1",
    ).stdout  # fmt: skip
    kube.kubectl("apply", "-n", NS, "-f", "-", input=rendered)


def test_template_applied_twice_keeps_every_pod_able_to_log_in(kube: Kube, tmp_path: Path) -> None:
    # Helm never renders crds/ here; a cluster where the release was uninstalled may lack it
    kube.kubectl("apply", "-f", str(CHART / "crds"))
    kube.namespace(NS)
    render_and_apply(kube)
    kube.wait_pods_ready(NS, 300)
    render_and_apply(kube)
    # pods started after the second render (Postgres keeps the data, and with it the
    # password, the first render's pods initialised it with)
    for deployment in ("operator", "api", "worker"):
        kube.kubectl("rollout", "restart", f"deployment/{RELEASE}-{deployment}", "-n", NS)
    for deployment in ("operator", "api", "worker"):
        kube.kubectl(
            "rollout",
            "status",
            f"deployment/{RELEASE}-{deployment}",
            "-n",
            NS,
            "--timeout=300s",
            timeout=320,
        )
    pods = kube.wait_pods_ready(NS, 300)
    assert all(n == 0 for n in kube.restarts(pods).values()), kube.restarts(pods)
    api = next(
        p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/component") == "api"
    )
    password = kube.admin_password(NS, f"{RELEASE}-api")
    with httpx.Client(base_url=f"http://{api['status']['podIP']}:8000", timeout=30) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, json.dumps(ready.json())
        wait_until(
            lambda: (
                client.post(
                    "/auth/login", json={"email": "admin@example.com", "password": password}
                ).status_code
                == 200
            ),
            60,
            "the admin to log in with the live Secret's password",
        )
    kube.kubectl("delete", "namespace", NS, "--timeout=180s", timeout=200)
