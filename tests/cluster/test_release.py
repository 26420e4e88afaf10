"""The shipped image and chart as real pods on the one-node cluster, in order:
install, a campaign the autoscaler answers with real worker pods, a rolling image
upgrade, deleted worker/operator/Postgres pods, the API through its NodePort,
a namespace deletion, and uninstall + CRD removal, all on ONE release (an install
is the most expensive step of the suite). Every campaign runs next to
a bystander campaign in another namespace that must finish as if alone, and
every one is checked exactly-once: the mock's delivery log (a hostPath volume)
against the rows in Postgres.

Campaign sizes are as small as keeps each point: a rate limit (not a size) keeps
a campaign running while pods are deleted, upgraded or started, whatever the
speed of the machine.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cluster as node
import httpx
import pytest
from cluster_client import (
    Kube,
    assert_exactly_once,
    campaign,
    mock_log,
    python_pod,
    wait_until,
)

NS = "notifq"
BYSTANDER = "bystander"
RELEASE = "notifq"
API = f"http://{node.NODE_IP}:30080"


@pytest.fixture(scope="module")
def release(kube: Kube, mock_log_dir: Path) -> Iterator[str]:
    kube.namespace(NS)
    kube.namespace(BYSTANDER)
    kube.helm("install", RELEASE, *kube.chart_args(mock_log_dir), "-n", NS)
    yield NS
    kube.helm("uninstall", RELEASE, "-n", NS, "--timeout", "120s", check=False)


def bystander(kube: Kube, name: str, count: int = 2000) -> str:
    kube.apply(
        campaign(
            name,
            BYSTANDER,
            provider="mock",
            recipients={"generate": {"count": count, "domain": f"{name}.test"}},
        )
    )
    return name


def big(kube: Kube, name: str, rate: int, count: int = 6000) -> str:
    kube.apply(
        campaign(
            name,
            NS,
            provider="mock",
            rateLimit=rate,
            recipients={"generate": {"count": count, "domain": f"{name}.test"}},
        )
    )
    return name


def finish_exactly_once(
    kube: Kube, mock_log_dir: Path, namespace: str, name: str, total: int
) -> dict[str, int]:
    cr = kube.wait_final(namespace, name, 600)
    assert cr["status"]["total"] == total
    statuses = assert_exactly_once(kube, NS, cr["metadata"]["uid"], mock_log_dir, f"{name}.test")
    assert sum(statuses.values()) == total
    assert cr["status"]["sent"] == statuses.get("sent", 0)
    return statuses


def worker_pods(kube: Kube) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in kube.pods(NS, "app.kubernetes.io/component=worker")}


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def test_install_every_pod_ready_without_restarts(kube: Kube, release: str) -> None:
    pods = kube.wait_pods_ready(release, 180)
    assert kube.restarts(pods) == dict.fromkeys(kube.restarts(pods), 0), kube.restarts(pods)
    components = sorted(
        {p["metadata"]["labels"].get("app.kubernetes.io/component", "?") for p in pods}
    )
    # (the autoscaler may already have taken the idle worker Deployment to its minimum)
    assert components == ["api", "operator", "postgres", "redis", "worker"]
    claims = kube.get("pvc", "-n", release)["items"]
    assert [(c["status"]["phase"], c["spec"]["storageClassName"]) for c in claims] == [
        ("Bound", "local-path")
    ]


REACH = r"""
import json, socket, sys
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        out[target] = "open"
    except OSError as exc:
        out[target] = repr(exc)
print(json.dumps(out))
"""


def reach_from(kube: Kube, namespace: str, name: str, targets: list[str]) -> dict[str, str]:
    """Which TCP targets a pod without notifq's labels in ``namespace`` can connect to."""
    kube.apply(python_pod(name, namespace, REACH, *targets))
    wait_until(
        lambda: (
            kube.get("pod", name, "-n", namespace)["status"].get("phase") in {"Succeeded", "Failed"}
        ),
        180,
        f"probe pod {namespace}/{name} to finish",
    )
    logs = kube.kubectl("logs", name, "-n", namespace).stdout
    kube.kubectl("delete", "pod", name, "-n", namespace, "--wait=false", check=False)
    result: dict[str, str] = json.loads(logs.strip().splitlines()[-1])
    return result


def test_network_policies_leave_only_the_api_reachable(kube: Kube, release: str) -> None:
    """The chart's NetworkPolicies, enforced by the node's kube-router: a pod that is
    not one of the release's own (in the release's namespace or another) reaches the
    API but not Postgres, Redis or the operator's health port; the API pod, one of
    the release's own, reaches Postgres and Redis."""
    svc = "svc.cluster.local"
    operator = kube.get("pods", "-n", NS, "-l", "app.kubernetes.io/component=operator")
    operator_ip = operator["items"][0]["status"]["podIP"]
    targets = {
        "postgres": f"{RELEASE}-postgres.{NS}.{svc}:5432",
        "redis": f"{RELEASE}-redis.{NS}.{svc}:6379",
        "operator": f"{operator_ip}:8080",
        "api": f"{RELEASE}-api.{NS}.{svc}:8000",
    }
    for namespace, name in ((BYSTANDER, "outsider"), (NS, "neighbour")):
        got = reach_from(kube, namespace, name, list(targets.values()))
        assert got[targets["api"]] == "open", (namespace, got)
        for closed in ("postgres", "redis", "operator"):
            assert got[targets[closed]] != "open", (namespace, closed, got)
    # the release's own pods still get through (the rest of this suite sends through them)
    inside = kube.kubectl(
        "exec", "-n", NS, f"deploy/{RELEASE}-api", "-c", "api", "--",
        "python3", "-c", REACH, targets["postgres"], targets["redis"],
    )  # fmt: skip
    got = json.loads(inside.stdout.strip().splitlines()[-1])
    assert set(got.values()) == {"open"}, got
    # and the in-chart Redis still wants its password from them
    noauth = kube.kubectl(
        "exec", "-n", NS, f"deploy/{RELEASE}-api", "-c", "api", "--", "python3", "-c",
        "import redis, sys\ntry:\n    redis.Redis(host=sys.argv[1]).ping(); print('answered')\n"
        "except redis.AuthenticationError as exc:\n    print('refused:', exc)",
        f"{RELEASE}-redis.{NS}.{svc}",
    )  # fmt: skip
    assert noauth.stdout.startswith("refused:"), noauth.stdout


def annotate_worker(kube: Kube, *pairs: str) -> None:
    kube.kubectl("annotate", "deployment", f"{RELEASE}-worker", "-n", NS, "--overwrite", *pairs)


def test_campaign_scales_real_worker_pods(
    kube: Kube, release: str, mock_log_dir: Path, results: Path
) -> None:
    # 5,000 pending at 1,000 per replica asks for 5 workers (the chart's 5,000 per replica
    # would need 20,000 messages to show the same); a short scale-down window
    before = kube.get("deployment", f"{RELEASE}-worker", "-n", NS)["metadata"]["annotations"]
    target = "notifq.dev/target-backlog-per-replica"
    window = "notifq.dev/scale-down-window-seconds"
    annotate_worker(kube, f"{target}=1000", f"{window}=20")
    try:
        scale_up_and_down(kube, mock_log_dir, results)
    finally:  # the chart's policy again for the tests after this one
        annotate_worker(kube, f"{target}={before[target]}", f"{window}-")


def scale_up_and_down(kube: Kube, mock_log_dir: Path, results: Path) -> None:
    initial = set(worker_pods(kube))
    watch_file = (results / "campaigns-watch.txt").open("w")
    watch = kube.popen_kubectl("get", "campaigns", "-A", "-w", stdout=watch_file)
    try:
        big(kube, "big", rate=100, count=5000)
        bystander(kube, "by-big")
        seen: dict[str, bool] = {}
        replicas: list[int] = []

        def done() -> bool:
            for name, pod in worker_pods(kube).items():
                seen[name] = seen.get(name, False) or is_ready(pod)
            replicas.append(
                kube.get("deployment", f"{RELEASE}-worker", "-n", NS)["spec"]["replicas"]
            )
            return kube.campaign(NS, "big").get("status", {}).get("phase") in {
                "Completed",
                "CompletedWithFailures",
            }

        wait_until(done, 600, "campaign big to finish")
        # until the watch has printed the final phase too
        wait_until(
            lambda: any(
                line.split()[:2] == [NS, "big"] and "Completed" in line
                for line in (results / "campaigns-watch.txt").read_text().splitlines()
            ),
            60,
            "the watch to print the final phase",
        )
    finally:
        watch.terminate()
        watch.wait(10)
        watch_file.close()
    statuses = finish_exactly_once(kube, mock_log_dir, NS, "big", 5000)
    finish_exactly_once(kube, mock_log_dir, BYSTANDER, "by-big", 2000)
    assert statuses.get("sent", 0) > 4500, statuses
    # the operator scaled the Deployment up from the backlog, and real pods ran
    assert max(replicas) >= 4, replicas
    started = {name for name, ready in seen.items() if ready} - initial
    assert started, f"no new worker pod became Ready (replicas seen: {sorted(set(replicas))})"
    _, by_pod = mock_log(mock_log_dir)
    assert any(by_pod.get(name, 0) > 0 for name in started), (by_pod, started)
    # ... then scaled down once the backlog was gone: the extra pods drained and went away
    wait_until(
        lambda: len(worker_pods(kube)) == 1, 300, "the worker Deployment to scale down to 1 pod"
    )
    events = kube.kubectl(
        "get", "events", "-n", NS, "--field-selector", "reason=WorkersScaled"
    ).stdout
    assert "WorkersScaled" in events
    capture = (results / "campaigns-watch.txt").read_text()
    assert "big" in capture and "Processing" in capture and "Completed" in capture
    (results / "pods-after-scaling.txt").write_text(
        kube.kubectl("get", "pods", "-A", "-o", "wide").stdout
    )
    (results / "campaigns-after-scaling.txt").write_text(
        kube.kubectl("get", "campaigns", "-A").stdout
    )


def test_helm_upgrade_of_the_image_tag_mid_campaign_loses_and_repeats_nothing(
    kube: Kube, release: str, mock_log_dir: Path
) -> None:
    ctr = ["ctr", "--address", str(node.Paths(node.STATE).containerd_sock), "-n", "k8s.io"]
    subprocess.run(
        [
            *ctr,
            "images",
            "tag",
            "--force",
            "docker.io/library/notifq:dev",
            "docker.io/library/notifq:dev-b",
        ],
        check=True,
        capture_output=True,
    )
    big(kube, "upgrade", rate=150)  # at least 40 s: the rollout happens mid-campaign
    bystander(kube, "by-upgrade")
    wait_until(
        lambda: kube.campaign(NS, "upgrade").get("status", {}).get("sent", 0) >= 600,
        300,
        "600 sent",
    )
    kube.helm(
        "upgrade", RELEASE, *kube.chart_args(mock_log_dir, "--set", "image.tag=dev-b"), "-n", NS
    )
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
    finish_exactly_once(kube, mock_log_dir, NS, "upgrade", 6000)
    finish_exactly_once(kube, mock_log_dir, BYSTANDER, "by-upgrade", 2000)
    images = {
        c["image"]
        for p in kube.pods(NS)
        for c in p["spec"]["containers"]
        if p["metadata"]["labels"].get("app.kubernetes.io/component")
        in {"operator", "api", "worker"}
    }
    assert images == {"notifq:dev-b"}


def test_worker_and_operator_pods_deleted_mid_campaign_lose_nothing(
    kube: Kube, release: str, mock_log_dir: Path
) -> None:
    big(kube, "faults", rate=150)  # at least 40 s: the pods go mid-campaign
    bystander(kube, "by-faults")
    wait_until(
        lambda: kube.campaign(NS, "faults").get("status", {}).get("sent", 0) >= 1000,
        300,
        "1,000 sent",
    )
    worker = sorted(worker_pods(kube))[0]
    operator = kube.pods(NS, "app.kubernetes.io/component=operator")[0]["metadata"]["name"]
    kube.kubectl("delete", "pod", worker, operator, "-n", NS, "--wait=false")
    finish_exactly_once(kube, mock_log_dir, NS, "faults", 6000)
    finish_exactly_once(kube, mock_log_dir, BYSTANDER, "by-faults", 2000)
    new_operator = kube.pods(NS, "app.kubernetes.io/component=operator")[0]["metadata"]["name"]
    assert new_operator != operator


def _snapshot(kube: Kube) -> list[list[str]]:
    return kube.psql(
        NS,
        "SELECT c.namespace, c.name, m.status, count(*) FROM campaign c"
        " JOIN message m ON m.campaign_id = c.id GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )


def test_postgres_pod_deleted_comes_back_with_its_data(
    kube: Kube, release: str, mock_log_dir: Path
) -> None:
    before = _snapshot(kube)
    assert before, "no campaign rows to keep"
    sends_before, _ = mock_log(mock_log_dir)
    pod = kube.get("pod", f"{RELEASE}-postgres-0", "-n", NS)
    claim = kube.get("pvc", "-n", NS)["items"][0]["metadata"]["uid"]
    kube.kubectl("delete", "pod", f"{RELEASE}-postgres-0", "-n", NS)
    wait_until(
        lambda: (
            (p := kube.get("pod", f"{RELEASE}-postgres-0", "-n", NS))["metadata"]["uid"]
            != pod["metadata"]["uid"]
            and is_ready(p)
        ),
        180,
        "a new Postgres pod Ready",
    )
    assert kube.get("pvc", "-n", NS)["items"][0]["metadata"]["uid"] == claim
    assert _snapshot(kube) == before
    # the system works again (a new campaign and a bystander finish) and nothing old was re-sent
    kube.apply(
        campaign(
            "after-pg",
            NS,
            provider="mock",
            recipients={"generate": {"count": 1000, "domain": "after-pg.test"}},
        )
    )
    bystander(kube, "by-after-pg", 500)
    finish_exactly_once(kube, mock_log_dir, NS, "after-pg", 1000)
    finish_exactly_once(kube, mock_log_dir, BYSTANDER, "by-after-pg", 500)
    sends_after, _ = mock_log(mock_log_dir)
    old = {r: n for r, n in sends_after.items() if r in sends_before}
    assert old == dict(sends_before)


def test_api_and_dashboard_through_the_node_port(
    kube: Kube, release: str, mock_log_dir: Path
) -> None:
    password = kube.admin_password(NS, f"{RELEASE}-api")
    with httpx.Client(base_url=API, timeout=30, follow_redirects=True) as client:
        assert client.get("/health").status_code == 200
        page = client.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert (
            client.post(
                "/auth/login", json={"email": "admin@example.com", "password": "wrong"}
            ).status_code
            == 401
        )
        login = client.post(
            "/auth/login", json={"email": "admin@example.com", "password": password}
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        created = client.post(
            "/campaigns", json={"name": "via api", "recipientCount": 300}, headers=headers
        )
        assert created.status_code == 202, created.text
        cid = created.json()["campaignId"]
        bystander(kube, "by-api", 300)
        final: dict[str, Any] = {}

        def finished() -> bool:
            nonlocal final
            final = client.get(f"/campaigns/{cid}", headers=headers).json()
            return final["status"] in {"completed", "completed_with_failures"}

        wait_until(finished, 300, "the API's campaign to finish")
    assert final["totalMessages"] == 300
    assert final["progress"]["pending"] == 0
    assert final["sentCount"] + final["failedCount"] == 300
    finish_exactly_once(kube, mock_log_dir, BYSTANDER, "by-api", 300)

    # the aggregated reports API through the API server, served by the API pod
    kube.kubectl("wait", "apiservice/v1alpha1.reports.notifq.dev", "--for=condition=Available",
                 "--timeout=120s", timeout=150)  # fmt: skip
    items = kube.get("campaigns", "-n", NS)["items"]
    by_uid = {c["metadata"]["uid"]: c["metadata"]["name"] for c in items}
    path = f"/apis/reports.notifq.dev/v1alpha1/namespaces/{NS}/campaignfailures/{by_uid[cid]}"
    got = kube.kubectl("get", "--raw", f"{path}?limit=1000", check=False)
    if got.returncode != 0:
        logs = kube.kubectl("logs", "-n", NS, f"deploy/{RELEASE}-api", "--tail=80", check=False)
        raise AssertionError(f"reports API: {got.stderr}\n--- API log\n{logs.stdout}{logs.stderr}")
    page = json.loads(got.stdout)
    assert page["kind"] == "CampaignFailures"
    assert len(page["items"]) == final["failedCount"]


def test_namespace_with_campaigns_is_deleted(kube: Kube, release: str, mock_log_dir: Path) -> None:
    doomed = kube.namespace("doomed")
    small = {"generate": {"count": 100, "domain": "doomed-small.test"}}
    kube.apply(campaign("small", doomed, provider="mock", recipients=small))
    kube.wait_final(doomed, "small", 300)
    bystander(kube, "by-doomed")
    running = {"generate": {"count": 5000, "domain": "doomed.test"}}
    kube.apply(campaign("running", doomed, provider="mock", rateLimit=100, recipients=running))
    wait_until(
        lambda: kube.campaign(doomed, "running").get("status", {}).get("sent", 0) > 0,
        300,
        "campaign running to send",
    )
    out = kube.kubectl("delete", "namespace", doomed, "--timeout=180s", check=False, timeout=200)
    assert out.returncode == 0, out.stderr
    assert kube.kubectl("get", "namespace", doomed, check=False).returncode != 0
    finish_exactly_once(kube, mock_log_dir, BYSTANDER, "by-doomed", 2000)


def test_uninstall_with_campaigns_present_then_delete_the_crd(kube: Kube, release: str) -> None:
    assert kube.get("campaigns", "-A")["items"], "campaigns must be present for this test"
    out = kube.helm(
        "uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "180s", check=False, timeout=240
    )
    assert out.returncode == 0, out.stderr
    out = kube.kubectl(
        "delete", "crd", "campaigns.notifq.dev", "--timeout=120s", check=False, timeout=150
    )
    assert out.returncode == 0, f"CRD deletion did not complete: {out.stderr}"
    assert kube.kubectl("get", "crd", "campaigns.notifq.dev", check=False).returncode != 0
