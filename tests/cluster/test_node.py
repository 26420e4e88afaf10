"""The node itself: Ready, pods get addresses, cluster DNS and Services work, and a
pod cannot reach any address beyond this machine (the isolation rule drops it)."""

from __future__ import annotations

import json
from typing import Any

import cluster as node
from cluster_client import Kube, python_pod, wait_until

PROBE = r"""
import json, socket, time

def tcp(host, port, timeout):
    start = time.monotonic()
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        ok, error = True, ""
    except OSError as exc:
        ok, error = False, repr(exc)
    return {"ok": ok, "error": error, "seconds": round(time.monotonic() - start, 2)}

print(json.dumps({
    "dns": socket.gethostbyname("kubernetes.default.svc.cluster.local"),
    "service": tcp("kubernetes.default.svc.cluster.local", 443, 5),
    "node": tcp("%(node)s", %(port)d, 5),
    "beyond": tcp("%(beyond)s", 80, 3),
}))
"""
# TEST-NET-3 (RFC 5737): documentation only, never routed; and dropped here before routing.
BEYOND = "203.0.113.10"


def probe_pod(name: str, namespace: str) -> dict[str, Any]:
    script = PROBE % {"node": node.NODE_IP, "port": node.API_PORT, "beyond": BEYOND}
    return python_pod(name, namespace, script)


def test_node_is_ready_with_local_storage(kube: Kube) -> None:
    nodes = kube.get("nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == [node.NODE_NAME]
    conditions = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert nodes[0]["status"]["nodeInfo"]["kubeletVersion"] == "v1.35.4"
    classes = kube.get("storageclass")["items"]
    default = [
        c["metadata"]["name"]
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class")
        == "true"
    ]
    assert default == ["local-path"]


def test_pod_reaches_node_and_services_but_nothing_beyond(kube: Kube) -> None:
    # the rule must be there before any pod sends a packet anywhere
    before = node.isolation_rule_packets()
    ns = kube.namespace("node-probe")
    bystander = kube.namespace("node-probe-bystander")
    kube.apply(probe_pod("probe", ns), probe_pod("probe", bystander))
    for namespace in (ns, bystander):
        wait_until(
            lambda n=namespace: (
                kube.get("pod", "probe", "-n", n)["status"].get("phase") in {"Succeeded", "Failed"}
            ),  # type: ignore[misc]
            180,
            f"probe pod in {namespace} to finish",
        )
        pod = kube.get("pod", "probe", "-n", namespace)
        logs = kube.kubectl("logs", "probe", "-n", namespace).stdout
        assert pod["status"]["phase"] == "Succeeded", logs
        assert pod["status"]["podIP"].startswith("10.244.")
        result = json.loads(logs.strip().splitlines()[-1])
        assert result["dns"] == node.API_SERVICE_IP, result
        assert result["service"]["ok"], result
        assert result["node"]["ok"], result
        assert not result["beyond"]["ok"], result
    # both pods' packets to the outside address were dropped by our rule
    assert node.isolation_rule_packets() >= before + 2


def test_an_image_pull_never_leaves_the_node(kube: Kube) -> None:
    ns = kube.namespace("node-pull")
    pod = probe_pod("pull", ns)
    pod["spec"]["containers"][0].update(
        image="registry.example.com/not-here:1", imagePullPolicy="Always"
    )
    kube.apply(pod)
    message = ""

    def failed() -> bool:
        nonlocal message
        events = kube.get("events", "-n", ns, "--field-selector", "reason=Failed")["items"]
        message = " ".join(e["message"] for e in events)
        return "pull" in message

    wait_until(failed, 120, "the pull to fail")
    assert "127.0.0.1:9" in message, message
