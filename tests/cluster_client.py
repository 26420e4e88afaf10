"""kubectl, helm and Postgres on the one-node cluster, for the cluster tests."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import testbed
import yaml

from notifq.core.phases import FINAL_PHASES
from notifq.core.recipients import RECIPIENT_OF_CAMPAIGN
from notifq.core.resource import API_VERSION

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "notifq"
KIND_VALUES = CHART / "ci" / "kind-values.yaml"
POSTRENDER = ROOT / "tests" / "cluster" / "postrender.py"
FINAL = FINAL_PHASES


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 1.0
) -> None:
    """testbed.wait_for, failing the test (not erroring) when time runs out."""
    try:
        testbed.wait_for(predicate, timeout, what, interval)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from exc


def campaign(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def python_pod(name: str, namespace: str, script: str, *args: str) -> dict[str, Any]:
    """A pod of the notifq image that runs ``python3 -c script args...`` once, with no
    notifq labels and no ServiceAccount token."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "probe",
                    "image": "notifq:dev",
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", script, *args],
                }
            ],
        },
    }


@dataclass
class Kube:
    bindir: Path
    kubeconfig: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        out = subprocess.run(
            argv, input=input, capture_output=True, text=True, check=False, timeout=timeout
        )
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
        return out

    def helm(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / "helm"), f"--kubeconfig={self.kubeconfig}", *args]
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {out.stderr.strip()}")
        return out

    def popen_kubectl(self, *args: str, stdout: Any) -> subprocess.Popen[str]:
        argv = [str(self.bindir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        return subprocess.Popen(argv, stdout=stdout, stderr=subprocess.STDOUT, text=True)

    def get(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", *args, "-o", "json").stdout))

    def apply(self, *manifests: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))

    def namespace(self, name: str) -> str:
        if self.kubectl("get", "namespace", name, check=False).returncode != 0:
            self.kubectl("create", "namespace", name)
        return name

    # --- the chart ----------------------------------------------------------------
    def chart_args(self, mock_log_dir: Path, *extra: str) -> list[str]:
        """The kind values, plus the mock delivery log on a hostPath (post-renderer)."""
        return [
            str(CHART),
            "-f",
            str(KIND_VALUES),
            "--post-renderer",
            sys.executable,
            "--post-renderer-args",
            str(POSTRENDER),
            "--post-renderer-args",
            str(mock_log_dir),
            *extra,
        ]

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["pods", "-n", namespace] + (["-l", selector] if selector else [])
        return list(self.get(*args)["items"])

    def wait_pods_ready(self, namespace: str, timeout: float) -> list[dict[str, Any]]:
        """Every pod of the namespace Ready (pods that ran to completion or are being
        deleted, as the old ones of a finished rollout, aside)."""
        pods: list[dict[str, Any]] = []

        def ready() -> bool:
            nonlocal pods
            pods = [
                p
                for p in self.pods(namespace)
                if p["status"].get("phase") != "Succeeded"
                and "deletionTimestamp" not in p["metadata"]
            ]
            return bool(pods) and all(
                any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions", [])
                )
                for p in pods
            )

        try:
            wait_until(ready, timeout, f"every pod in {namespace} Ready", 2)
        except AssertionError as exc:
            summary = self.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
            events = self.kubectl(
                "get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False
            ).stdout
            raise AssertionError(f"{exc}\n{summary}\n{events[-4000:]}") from exc
        return pods

    @staticmethod
    def restarts(pods: list[dict[str, Any]]) -> dict[str, int]:
        return {
            p["metadata"]["name"]: sum(
                c.get("restartCount", 0)
                for c in p["status"].get("containerStatuses", [])
                + p["status"].get("initContainerStatuses", [])
            )
            for p in pods
        }

    # --- campaigns and their truth in Postgres ------------------------------------
    def campaign(self, namespace: str, name: str) -> dict[str, Any]:
        return self.get("campaign", name, "-n", namespace)

    def wait_final(self, namespace: str, name: str, timeout: float) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def done() -> bool:
            nonlocal last
            last = self.campaign(namespace, name)
            return last.get("status", {}).get("phase") in FINAL

        try:
            wait_until(done, timeout, f"campaign {namespace}/{name} to finish", 2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstatus: {last.get('status')}") from exc
        return last

    def admin_password(self, namespace: str, deployment: str) -> str:
        """The admin password the live API pods get: their env's Secret reference, read."""
        pod = self.get("deployment", deployment, "-n", namespace)["spec"]["template"]["spec"]
        env = {e["name"]: e for c in pod["containers"] for e in c.get("env", [])}
        ref = env["NOTIFQ_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]
        data = self.get("secret", ref["name"], "-n", namespace)["data"]
        return base64.b64decode(data[ref["key"]]).decode()

    def psql(self, release_ns: str, sql: str, release: str = "notifq") -> list[list[str]]:
        out = self.kubectl(
            "exec", "-n", release_ns, f"{release}-postgres-0", "-c", "postgres", "--",
            "psql", "-U", "notifq", "-d", "notifq", "-v", "ON_ERROR_STOP=1", "-AtF", "\t",
            "-c", sql,
        ).stdout  # fmt: skip
        return [line.split("\t") for line in out.splitlines() if line]

    def messages(self, release_ns: str, uid: str) -> dict[str, str]:
        """recipient -> status of every message of one campaign."""
        rows = self.psql(  # a generated list's addresses are computed (migration 0014)
            release_ns,
            f"SELECT {RECIPIENT_OF_CAMPAIGN}, m.status FROM message m "
            f"JOIN campaign c ON c.id = m.campaign_id WHERE m.campaign_id = '{uid}'",
        )
        return {r[0]: r[1] for r in rows}


def mock_log(directory: Path) -> tuple[Counter[str], dict[str, int]]:
    """(sends accepted by the mock, by recipient; sends by worker pod)."""
    seen: Counter[str] = Counter()
    by_pod: Counter[str] = Counter()
    for path in directory.glob("*/*.log"):
        for line in path.read_text().splitlines():
            seen[line.split("\t", 1)[1]] += 1
            by_pod[path.parent.name] += 1
    return seen, dict(by_pod)


def assert_exactly_once(
    kube: Kube, release_ns: str, uid: str, log_dir: Path, domain: str
) -> dict[str, int]:
    """0 lost, 0 duplicates: every message final; the sent ones sent exactly once, no others."""
    rows = kube.messages(release_ns, uid)
    statuses = Counter(rows.values())
    assert set(statuses) <= {"sent", "failed"}, statuses
    seen, _ = mock_log(log_dir)
    mine = Counter({r: n for r, n in seen.items() if r.endswith("@" + domain)})
    duplicates = {r: n for r, n in mine.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} recipients delivered more than once"
    sent = {r for r, s in rows.items() if s == "sent"}
    assert set(mine) == sent, (
        f"lost (sent in Postgres, never delivered): {len(sent - set(mine))}; "
        f"delivered but not recorded sent: {len(set(mine) - sent)}"
    )
    return dict(statuses)
