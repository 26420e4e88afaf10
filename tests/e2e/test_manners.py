"""Kubernetes manners on the real control plane with the real operator and workers:
conditions that ``kubectl wait`` and GitOps tools read, Events that ``kubectl describe``
shows, ``ttlSecondsAfterFinished``, and the ``kubectl notifq`` plugin — each next to a
bystander campaign in another namespace that finishes as if alone."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import (
    PLUGIN,
    Stack,
    campaign,
    plugin_as,
    start_reports_api,
    user_kubeconfig,
    wait_until,
)

pytestmark = pytest.mark.e2e


def kubectl(stack: Stack, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """kubectl with the plugin on its PATH and KUBECONFIG set, as a user would run it
    (kubectl hands a plugin its own arguments only, not kubectl's flags)."""
    cp = stack.control_plane
    env = {
        **os.environ,
        "PATH": f"{PLUGIN.parent}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(cp.kubeconfig),
    }
    return subprocess.run(
        [str(cp.bindir / "kubectl"), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
        env=env,
    )


def plugin(stack: Stack, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return kubectl(stack, "notifq", *args, check=check)


def wait(stack: Stack, ns: str, name: str, condition: str, timeout: int = 90) -> str:
    out = kubectl(
        stack,
        "wait",
        f"campaign/{name}",
        "-n",
        ns,
        f"--for=condition={condition}",
        f"--timeout={timeout}s",
        check=False,
    )
    return out.stdout + out.stderr


def conditions(stack: Stack, ns: str, name: str) -> dict[str, str]:
    status = stack.get(ns, name).get("status", {})
    return {c["type"]: c["status"] for c in status.get("conditions", [])}


def events(stack: Stack, ns: str, name: str) -> list[str]:
    return [reason for reason, _ in stack.events(ns, name)]


@pytest.fixture
def two_namespaces(stack_factory: Callable[..., Stack]) -> tuple[Stack, str, str]:
    stack = stack_factory(workers=2, NOTIFQ_MOCK_FAILURE_RATE="0")
    names = []
    for _ in range(2):
        ns = f"m-{os.urandom(4).hex()}"
        stack.control_plane.kubectl("create", "namespace", ns)
        names.append(ns)
    return stack, names[0], names[1]


def test_conditions_and_kubectl_wait(two_namespaces: tuple[Stack, str, str]) -> None:
    stack, ns, other = two_namespaces
    stack.apply(campaign("bystander", other, recipients={"generate": {"count": 3000}}))
    stack.apply(campaign("ok", ns, recipients={"generate": {"count": 200}}))
    stack.apply(
        campaign(
            "some-fail",
            ns,
            recipients={"list": [f"reject-{i}@example.com" for i in range(3)] + ["a@example.com"]},
            retry={"attempts": 1},
        )
    )
    stack.apply(campaign("broken", ns, recipients={"configMapRef": {"name": "missing"}}))
    stack.apply(campaign("stopped", ns, recipients={"generate": {"count": 100}}, suspend=True))
    assert "condition met" in wait(stack, ns, "ok", "Complete")
    assert "condition met" in wait(stack, ns, "some-fail", "Complete")
    assert "condition met" in wait(stack, ns, "broken", "Failed")
    assert "condition met" in wait(stack, ns, "stopped", "Suspended")
    stack.control_plane.kubectl(
        "patch", "campaign", "stopped", "-n", ns, "--type=merge", "-p", '{"spec":{"cancel":true}}'
    )
    assert "condition met" in wait(stack, ns, "stopped", "Failed")
    # Complete is never true for a failed or cancelled campaign: kubectl wait times out
    assert "timed out" in wait(stack, ns, "broken", "Complete", timeout=3)
    assert "timed out" in wait(stack, ns, "stopped", "Complete", timeout=3)
    assert conditions(stack, ns, "ok") == {
        "Accepted": "True",
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "Complete": "True",
        "Failed": "False",
        "Suspended": "False",
    }
    assert conditions(stack, ns, "broken")["Stalled"] == "True"
    assert conditions(stack, ns, "stopped")["Ready"] == "True"  # the cancel asked is done
    observed = {c["observedGeneration"] for c in stack.get(ns, "ok")["status"]["conditions"]}
    assert observed == {stack.get(ns, "ok")["metadata"]["generation"]}

    # kubectl describe tells the story
    assert {"Stored", "Started", "Completed"} <= set(events(stack, ns, "ok"))
    assert {"Stored", "Started", "CompletedWithFailures"} <= set(events(stack, ns, "some-fail"))
    assert "InvalidSpec" in events(stack, ns, "broken")
    assert {"Suspended", "Cancelled"} <= set(events(stack, ns, "stopped"))
    described = kubectl(stack, "describe", "campaign", "broken", "-n", ns).stdout
    assert "ConfigMap" in described and "Failed" in described
    stack.wait_phase(other, "bystander", {"Completed"}, timeout=120)


def test_ttl_deletes_finished_campaigns(two_namespaces: tuple[Stack, str, str]) -> None:
    stack, ns, other = two_namespaces
    stack.apply(campaign("bystander", other, recipients={"generate": {"count": 500}}))
    stack.apply(
        campaign(
            "short-lived", ns, recipients={"generate": {"count": 50}}, ttlSecondsAfterFinished=2
        )
    )
    stack.apply(campaign("kept", ns, recipients={"generate": {"count": 50}}))
    stack.wait_phase(ns, "kept", {"Completed"})

    def gone() -> bool:
        return (
            stack.control_plane.kubectl(
                "get", "campaign", "short-lived", "-n", ns, check=False
            ).returncode
            != 0
        )

    wait_until(gone, 60, "the TTL to delete the finished campaign")
    assert stack.get(ns, "kept")["status"]["phase"] == "Completed"  # no TTL: stays
    bystander = stack.wait_phase(other, "bystander", {"Completed"})
    assert bystander["status"]["sent"] == 500


def test_kubectl_plugin(two_namespaces: tuple[Stack, str, str], tmp_path: Path) -> None:
    stack, ns, other = two_namespaces
    stack.apply(campaign("bystander", other, recipients={"generate": {"count": 300}}))
    recipients = (
        [f"reject-{i}@example.com" for i in range(4)]
        + [f"fail-{i}@example.com" for i in range(2)]
        + ["ok@example.com"]
    )
    stack.apply(campaign("flaky", ns, recipients={"list": recipients}, retry={"attempts": 1}))
    stack.wait_phase(ns, "flaky", {"CompletedWithFailures"})

    status = plugin(stack, "status", "flaky", "-n", ns).stdout
    assert "Phase:      CompletedWithFailures" in status
    assert "Failed:     6" in status and "ETA:        0s" in status

    failures_run = plugin(stack, "failures", "flaky", "-n", ns, check=False)
    assert failures_run.returncode == 0, failures_run.stderr
    failures = failures_run.stdout
    assert "6 failed message(s)" in failures
    assert "MessageRejected" in failures and "ServiceUnavailable" in failures
    assert "reject-0@example.com" not in failures  # status holds no personal data
    assert "does not serve the reports API" in failures  # no APIService in this test

    retried = plugin(stack, "retry", "flaky", "-n", ns, "--timeout", "60").stdout
    assert "retrying 6 failed message(s)" in retried
    assert "RetryRequested" in events(stack, ns, "flaky")

    stack.apply(campaign("big", ns, recipients={"generate": {"count": 100}}, suspend=True))
    stack.wait_phase(ns, "big", {"Suspended"})
    assert "resumed" in plugin(stack, "resume", "big", "-n", ns).stdout
    stack.wait_phase(ns, "big", {"Completed"})
    stack.apply(campaign("later", ns, recipients={"generate": {"count": 100}}, suspend=True))
    assert "suspended" in plugin(stack, "suspend", "later", "-n", ns).stdout
    assert "cancelled" in plugin(stack, "cancel", "later", "-n", ns).stdout
    stack.wait_phase(ns, "later", {"Cancelled"})
    refused = plugin(stack, "resume", "later", "-n", ns, check=False)
    assert refused.returncode == 1 and "cancelled" in refused.stderr

    top = plugin(stack, "top", "-A", "--interval", "0.5").stdout.splitlines()
    assert top[0].split()[:3] == ["NAMESPACE", "NAME", "PHASE"]
    rows = {tuple(line.split()[:2]) for line in top[1:]}
    assert {(ns, "flaky"), (ns, "big"), (other, "bystander")} <= rows

    missing = plugin(stack, "status", "nope", "-n", ns, check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr
    bystander = stack.wait_phase(other, "bystander", {"Completed"})
    assert bystander["status"]["sent"] == 300


def test_plugin_uses_only_the_kubeconfig_identity(
    two_namespaces: tuple[Stack, str, str], tmp_path: Path
) -> None:
    """No database or Redis settings reach the plugin: it works with a bare environment."""
    stack, ns, _ = two_namespaces
    stack.apply(campaign("solo", ns, recipients={"generate": {"count": 20}}))
    stack.wait_phase(ns, "solo", {"Completed"})
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [str(PLUGIN), f"--kubeconfig={stack.control_plane.kubeconfig}", "status", "solo", "-n", ns],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Sent:       20" in out.stdout


def _forged_request(port: int, path: str) -> int | None:
    """GET with a made-up admin identity and no client certificate: the status, or None
    when the TLS handshake refuses the connection."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request(
            "GET", path, headers={"X-Remote-User": "admin", "X-Remote-Group": "system:masters"}
        )
        return conn.getresponse().status
    except (ssl.SSLError, ConnectionError):
        return None
    finally:
        conn.close()


def test_failed_recipients_with_the_users_own_rights(
    two_namespaces: tuple[Stack, str, str], tmp_path: Path
) -> None:
    """``kubectl notifq failures`` lists failed recipients through the Kubernetes API server
    (aggregated API ``reports.notifq.dev``): the API server authenticates the kubeconfig's
    user, the API pod re-checks RBAC for ``campaignfailures`` with a SubjectAccessReview, and
    a user without that right, or asking in another namespace, is refused."""
    stack, ns, other = two_namespaces
    cp = stack.control_plane
    reports_port = start_reports_api(stack)
    rejected = [f"reject-{i}@example.com" for i in range(5)]
    stack.apply(
        campaign(
            "bystander",
            other,
            recipients={
                "list": ["reject-x@example.com"] + [f"b{i}@example.com" for i in range(300)]
            },
            retry={"attempts": 1},
        )
    )
    stack.apply(
        campaign(
            "flaky",
            ns,
            recipients={"list": rejected + [f"ok-{i}@example.com" for i in range(20)]},
            retry={"attempts": 1},
        )
    )
    rules = [
        {"apiGroups": ["notifq.dev"], "resources": ["campaigns"], "verbs": ["get", "list"]},
        {"apiGroups": ["reports.notifq.dev"], "resources": ["campaignfailures"], "verbs": ["get"]},
    ]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "failures-reader", "namespace": ns}, "rules": rules}  # fmt: skip
    for target in (ns, other):  # the outsider may read campaigns, not their recipients
        cp.kubectl("create", "role", "campaign-reader", "-n", target, "--verb=get,list",
                   "--resource=campaigns.notifq.dev")  # fmt: skip
    cp.kubectl("apply", "-f", "-", input=json.dumps(role))
    reader = user_kubeconfig(stack, ns, "reader", tmp_path)
    outsider = user_kubeconfig(stack, ns, "outsider", tmp_path)
    cp.kubectl("create", "rolebinding", "reader", "-n", ns, "--role=failures-reader",
               f"--serviceaccount={ns}:reader")  # fmt: skip
    for target in (ns, other):
        for sa in ("reader", "outsider"):
            cp.kubectl("create", "rolebinding", f"{sa}-campaigns", "-n", target,
                       "--role=campaign-reader", f"--serviceaccount={ns}:{sa}")  # fmt: skip
    stack.wait_phase(ns, "flaky", {"CompletedWithFailures"})

    def as_user(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return plugin_as(kubeconfig, tmp_path, *args)

    with cp.aggregated_api("reports.notifq.dev", "v1alpha1", reports_port):
        first = as_user(reader, "failures", "flaky", "--limit", "3")
        assert first.returncode == 0, first.stderr
        assert "5 failed message(s)" in first.stdout and "MessageRejected" in first.stdout
        assert "--continue " in first.stdout
        token = first.stdout.split("--continue ")[1].split()[0]
        second = as_user(reader, "failures", "flaky", "--limit", "3", "--continue", token)
        assert second.returncode == 0, second.stderr
        assert "--continue" not in second.stdout
        listed = [r for r in rejected if r in first.stdout + second.stdout]
        assert listed == rejected  # each failed recipient once, in order, over two pages
        assert not any(r in first.stdout and r in second.stdout for r in rejected)
        assert "ok-0@example.com" not in first.stdout + second.stdout

        refused = as_user(outsider, "failures", "flaky")
        assert refused.returncode == 1 and "forbidden" in refused.stderr.lower()
        assert "reject-" not in refused.stdout
        elsewhere = as_user(reader, "failures", "bystander", "-n", other)
        assert elsewhere.returncode == 1 and "forbidden" in elsewhere.stderr.lower()
        assert "reject-x" not in elsewhere.stdout

        # nobody but the front proxy reaches the pod: a forged identity without its client
        # certificate is refused in the TLS handshake
        assert (
            _forged_request(
                reports_port,
                f"/apis/reports.notifq.dev/v1alpha1/namespaces/{ns}/campaignfailures/flaky",
            )
            is None
        )

        # the API server authorizes the path itself too: kubectl get --raw as the outsider
        raw = kubectl(stack, "get", "--raw",
                      f"/apis/reports.notifq.dev/v1alpha1/namespaces/{ns}/campaignfailures/flaky",
                      "--kubeconfig", str(outsider), check=False)  # fmt: skip
        assert raw.returncode != 0 and "forbidden" in raw.stderr.lower()

    bystander = stack.wait_phase(other, "bystander", {"CompletedWithFailures"})
    assert bystander["status"]["sent"] == 300 and bystander["status"]["failed"] == 1
