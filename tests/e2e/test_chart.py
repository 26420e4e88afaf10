"""The Helm chart on a real kube-apiserver with the real helm binary: lint, server-side
dry-run, install / upgrade / uninstall, values-schema rejections, and least privilege
proven by running the real operator and workers with the chart's ServiceAccount token.

No controller-manager runs, so Deployments never get Pods: the tests check that the
objects exist and that notifq's processes, run locally, work with exactly the
permissions the chart grants.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import testbed
import yaml
from harness import Stack, campaign

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "notifq"
KIND_VALUES = CHART / "ci" / "kind-values.yaml"
EXTERNAL_VALUES = CHART / "ci" / "external-values.yaml"
# Helm built from its Go module reports a default Kubernetes v1.20 for `helm template`.
KUBE_VERSION = "v1.35.0"

pytestmark = pytest.mark.e2e


class Helm:
    """The helm binary pointed at the test bed, with private config/cache dirs."""

    def __init__(self, cp: testbed.ControlPlane, home: Path) -> None:
        self.cp = cp
        self.env = {
            **os.environ,
            "KUBECONFIG": str(cp.kubeconfig),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def template(self, *args: str, values: Path = KIND_VALUES) -> str:
        """`helm template` of the chart as release nq, for the test bed's Kubernetes version."""
        out = self(
            "template", "nq", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(values), *args
        )
        return str(out.stdout)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(self.cp.bindir / "helm"), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            check=False,
        )
        if check and out.returncode:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out


@pytest.fixture(scope="module")
def helm(control_plane: testbed.ControlPlane, workdir: Path) -> Helm:
    return Helm(control_plane, workdir / "helm")


def _ns(cp: testbed.ControlPlane, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "namespace", name)
    return name


def _get(cp: testbed.ControlPlane, ns: str, *what: str) -> dict[str, Any]:
    return dict(json.loads(cp.kubectl("get", *what, "-n", ns, "-o", "json").stdout))


@pytest.fixture(scope="module")
def release(control_plane: testbed.ControlPlane, helm: Helm) -> Iterator[tuple[str, str]]:
    """The chart installed once (kind values: in-chart Postgres and Redis) as (name, ns)."""
    ns = _ns(control_plane, "chart")
    helm("install", "nq", str(CHART), "-n", ns, "-f", str(KIND_VALUES))
    yield "nq", ns
    helm("uninstall", "nq", "-n", ns, check=False)


def _token_kubeconfig(cp: testbed.ControlPlane, ns: str, sa: str, path: Path) -> str:
    """A kubeconfig authenticating as the ServiceAccount (TokenRequest API)."""
    token = str(cp.kubectl("create", "token", sa, "-n", ns, "--duration=1h").stdout).strip()
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "tb", "cluster": {"server": cp.server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "tb", "context": {"cluster": "tb", "user": sa, "namespace": ns}}],
        "current-context": "tb",
    }
    path.write_text(json.dumps(cfg))
    return token


def _as(cp: testbed.ControlPlane, token: str, *args: str, input: str | None = None) -> str:
    """Run kubectl with only the token's identity; returns '' on success, else stderr."""
    argv = [
        str(cp.bindir / "kubectl"),
        f"--server={cp.server}",
        "--insecure-skip-tls-verify",
        f"--token={token}",
        *args,
    ]
    out = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=60, check=False)
    return out.stderr if out.returncode else ""


def _jobs(cp: testbed.ControlPlane, ns: str) -> dict[str, dict[str, Any]]:
    """The release's Jobs by what they do (migrate, secrets)."""
    found = {}
    for job in _get(cp, ns, "jobs")["items"]:
        name = job["metadata"]["name"]
        what = re.fullmatch(r"nq-notifq-(\w+)-[0-9a-f]{8}", name)
        assert what, name
        found[what.group(1)] = job
    return found


def _run_secrets_job(cp: testbed.ControlPlane, ns: str, job: dict[str, Any], workdir: Path) -> str:
    """Run the secrets Job's container as the kubelet would: its command, its
    ServiceAccount's token (the pod's namespace passed as the mounted file would)."""
    pod = job["spec"]["template"]["spec"]
    kubeconfig = workdir / f"secrets-sa-{ns}.kubeconfig"
    _token_kubeconfig(cp, ns, pod["serviceAccountName"], kubeconfig)
    args = pod["containers"][0]["args"]
    out = subprocess.run(
        [str(Path(sys.executable).parent / args[0]), *args[1:], "--namespace", ns],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stderr


def _secret_data(cp: testbed.ControlPlane, ns: str, name: str) -> dict[str, str]:
    data = _get(cp, ns, "secret", name).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _resolved_env(cp: testbed.ControlPlane, ns: str, container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet builds it: secretKeyRefs read from the
    live Secrets, $(VAR) references to earlier variables expanded."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), var["value"]
            )
        elif "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = _secret_data(cp, ns, ref["name"])[ref["key"]]
    return env


# --- lint and render --------------------------------------------------------------


def test_lint_strict_and_server_side_dry_run(
    control_plane: testbed.ControlPlane, helm: Helm
) -> None:
    ns = _ns(control_plane, "dry")
    for values in (KIND_VALUES, EXTERNAL_VALUES):
        out = helm("lint", "--strict", str(CHART), "-f", str(values))
        assert "0 chart(s) failed" in out.stdout
        assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout
        # the ServiceMonitor's CRD is not on the test bed: validated without it
        rendered = helm.template(
            "-n", ns, "--set", "metrics.serviceMonitor.enabled=false", values=values
        )
        applied = control_plane.kubectl(
            "apply", "--dry-run=server", "-n", ns, "-f", "-", input=rendered
        ).stdout
        assert "deployment.apps/nq-notifq-operator created (server dry run)" in applied
    monitor = helm(
        "template", "nq", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(EXTERNAL_VALUES)
    ).stdout
    kinds = {d["kind"] for d in yaml.safe_load_all(monitor) if d}
    assert {"ServiceMonitor", "Ingress"} <= kinds


def test_policies_and_push_prefixes_from_values(
    control_plane: testbed.ControlPlane, helm: Helm, tmp_path: Path
) -> None:
    """`policies` become NotifqPolicies the API server accepts; `config.pushArnPrefixes`
    reaches the operator's and the workers' settings; the CRD refuses a share over 100 %."""
    ns = _ns(control_plane, "pol")
    prefix = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/"
    values = tmp_path / "policies.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "config": {"pushArnPrefixes": [prefix]},
                "policies": [
                    {
                        "name": f"{ns}-default",
                        "spec": {
                            "maxActiveCampaigns": 3,
                            "maxRecipients": 100000,
                            "providerSharePercent": {"ses": 30, "*": 50},
                            "s3": [{"bucket": "lists", "prefix": "team-a/"}],
                        },
                    }
                ],
            }
        )
    )
    docs = [d for d in yaml.safe_load_all(helm.template("-n", ns, "-f", str(values))) if d]
    (policy,) = [d for d in docs if d["kind"] == "NotifqPolicy"]
    assert policy["spec"]["providerSharePercent"] == {"ses": 30, "*": 50}
    applied = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(policy)
    ).stdout
    assert f"notifqpolicy.notifq.dev/{ns}-default created (server dry run)" in applied
    for d in docs:
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] in (
            "nq-notifq-operator",
            "nq-notifq-worker",
        ):
            assert json.loads(d["data"]["NOTIFQ_PUSH_ARN_PREFIXES"]) == [prefix]
    policy["spec"]["providerSharePercent"] = {"ses": 150}
    out = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(policy), check=False
    )
    assert out.returncode != 0 and "providerSharePercent.ses" in out.stderr, out.stderr


# --- values schema ---------------------------------------------------------------

BAD_VALUES = [
    ({"wroker": {"replicas": 2}}, "additional properties 'wroker' not allowed"),
    ({"worker": {"replicas": "two"}}, "at '/worker/replicas': got string, want integer"),
    ({"worker": {"replicas": -1}}, "at '/worker/replicas': minimum: got -1, want 0"),
    ({"config": {"environment": "prod"}}, "at '/config/environment': value must be one of"),
    ({"postgres": {"url": ""}}, "at '/postgres/url': minLength: got 0, want 1"),
    ({"api": {"service": {"type": "NodePrt"}}}, "at '/api/service/type': value must be one of"),
    ({"worker": {"mock": {"failureRate": 1.5}}}, "at '/worker/mock/failureRate': maximum"),
    ({"api": {"jwtSecret": "short"}}, "at '/api/jwtSecret'"),
]


@pytest.mark.parametrize(("values", "error"), BAD_VALUES, ids=[e for _, e in BAD_VALUES])
def test_schema_rejects_bad_values(
    helm: Helm, tmp_path: Path, values: dict[str, Any], error: str
) -> None:
    base = yaml.safe_load(KIND_VALUES.read_text())
    if "postgres" in values:  # the in-chart database off and no URL
        base["postgres"] = {"inChart": {"enabled": False}}
    for key, value in values.items():
        base[key] = {**base.get(key, {}), **value}
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(base))
    out = helm(
        "template", "nq", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(path), check=False
    )
    assert out.returncode != 0
    assert "values don't meet the specifications of the schema" in out.stderr
    assert error in out.stderr, out.stderr


# --- install / upgrade / uninstall -----------------------------------------------


def test_install_creates_every_object(
    control_plane: testbed.ControlPlane, release: tuple[str, str], workdir: Path
) -> None:
    _, ns = release
    names = {
        (item["kind"], item["metadata"]["name"])
        for item in _get(
            control_plane,
            ns,
            "deployments,statefulsets,services,serviceaccounts,secrets,configmaps,"
            "roles,rolebindings,poddisruptionbudgets",
        )["items"]
    }
    expected = {
        ("Deployment", "nq-notifq-operator"),
        ("Deployment", "nq-notifq-api"),
        ("Deployment", "nq-notifq-worker"),
        ("StatefulSet", "nq-notifq-postgres"),
        ("StatefulSet", "nq-notifq-redis"),
        ("Service", "nq-notifq-api"),
        ("Service", "nq-notifq-postgres"),
        ("Service", "nq-notifq-redis"),
        ("Service", "nq-notifq-operator-metrics"),
        ("Service", "nq-notifq-worker-metrics"),
        ("ServiceAccount", "nq-notifq-operator"),
        ("ServiceAccount", "nq-notifq-api"),
        ("ServiceAccount", "nq-notifq-worker"),
        ("ServiceAccount", "nq-notifq-secrets"),
        ("Secret", "nq-notifq"),
        ("ConfigMap", "nq-notifq-operator"),
        ("ConfigMap", "nq-notifq-api"),
        ("ConfigMap", "nq-notifq-worker"),
        ("Role", "nq-notifq-api-admin"),
        ("Role", "nq-notifq-operator-scaler"),
        ("Role", "nq-notifq-operator-leader"),
        ("Role", "nq-notifq-secrets"),
        ("RoleBinding", "nq-notifq-api-admin"),
        ("RoleBinding", "nq-notifq-operator-scaler"),
        ("RoleBinding", "nq-notifq-operator-leader"),
        ("RoleBinding", "nq-notifq-secrets"),
        ("PodDisruptionBudget", "nq-notifq-api"),
        ("PodDisruptionBudget", "nq-notifq-worker"),
        ("PodDisruptionBudget", "nq-notifq-operator"),
    }
    assert expected <= names, expected - names
    control_plane.kubectl("get", "clusterrole,clusterrolebinding", f"{ns}-nq-notifq-operator")
    control_plane.kubectl("get", "clusterrole,clusterrolebinding", f"{ns}-nq-notifq-api")

    # two operator replicas behind a Lease, rolled one at a time
    op = _get(control_plane, ns, "deployment", "nq-notifq-operator")
    assert op["spec"]["replicas"] == 2
    assert op["spec"]["strategy"]["type"] == "RollingUpdate"
    assert op["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = op["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["NOTIFQ_LEADER_LEASE_NAME"]["value"] == "nq-notifq-operator"
    assert env["NOTIFQ_LEADER_LEASE_NAMESPACE"]["value"] == ns
    assert env["NOTIFQ_LEADER_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    config = _get(control_plane, ns, "configmap", "nq-notifq-operator")["data"]
    assert config["NOTIFQ_LEADER_ELECTION"] == "true"
    assert config["NOTIFQ_LEADER_LEASE_DURATION"] == "10"
    sc = pod["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"

    # nothing starts before the schema exists: every notifq pod waits for it first
    for component in ("operator", "api", "worker"):
        spec = _get(control_plane, ns, "deployment", f"nq-notifq-{component}")["spec"]
        init = spec["template"]["spec"]["initContainers"]
        assert [c["args"] for c in init] == [["notifq-migrate", "wait", "--timeout", "600"]]
    jobs = _jobs(control_plane, ns)
    assert set(jobs) == {"migrate", "secrets"}
    migrate = jobs["migrate"]["spec"]["template"]["spec"]
    assert migrate["containers"][0]["args"] == [
        "notifq-migrate",
        "upgrade",
        "--wait-timeout",
        "300",
    ]
    assert migrate["restartPolicy"] == "Never"

    # the reports API (kind values): an APIService for the release's reports Service
    apisvc = json.loads(
        control_plane.kubectl(
            "get", "apiservice", "v1alpha1.reports.notifq.dev", "-o", "json"
        ).stdout
    )
    assert apisvc["spec"]["service"] == {
        "name": "nq-notifq-api-reports",
        "namespace": ns,
        "port": 443,
    }

    worker = _get(control_plane, ns, "deployment", "nq-notifq-worker")
    assert worker["metadata"]["labels"]["notifq.dev/worker-pool"] == "default"
    assert "notifq.dev/worker-pool" not in worker["spec"]["selector"]["matchLabels"]
    assert worker["metadata"]["annotations"]["notifq.dev/max-replicas"] == "10"
    assert worker["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30

    # the chart's Secret holds no random value; the secrets Job generates the credentials
    assert set(_secret_data(control_plane, ns, "nq-notifq")) == set()
    _run_secrets_job(control_plane, ns, jobs["secrets"], workdir)
    generated = _secret_data(control_plane, ns, "nq-notifq-generated")
    assert set(generated) == {"jwt-secret", "admin-password", "postgres-password", "redis-password"}
    assert len(generated["admin-password"]) == 24 and len(generated["jwt-secret"]) == 48
    assert len(generated["postgres-password"]) == 32 and len(generated["redis-password"]) == 32
    env = _resolved_env(control_plane, ns, pod["initContainers"][0])
    assert (
        env["NOTIFQ_DATABASE_URL"]
        == f"postgresql://notifq:{generated['postgres-password']}@nq-notifq-postgres:5432/notifq"
    )
    # the in-chart Redis requires the same generated password its clients use
    assert (
        env["NOTIFQ_REDIS_URL"] == f"redis://:{generated['redis-password']}@nq-notifq-redis:6379/0"
    )
    redis = _get(control_plane, ns, "statefulset", "nq-notifq-redis")["spec"]["template"]["spec"]
    server = redis["containers"][0]
    assert server["args"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    assert _resolved_env(control_plane, ns, server)["REDIS_PASSWORD"] == generated["redis-password"]


def test_upgrade_changes_values_and_keeps_secrets(
    control_plane: testbed.ControlPlane, helm: Helm, release: tuple[str, str], workdir: Path
) -> None:
    name, ns = release
    jobs = _jobs(control_plane, ns)
    _run_secrets_job(control_plane, ns, jobs["secrets"], workdir)
    before = _secret_data(control_plane, ns, "nq-notifq-generated")
    worker_before = _get(control_plane, ns, "deployment", "nq-notifq-worker")
    # a new pool name: the selector is immutable, so the pool must not be in it
    helm(
        "upgrade",
        name,
        str(CHART),
        "-n",
        ns,
        "-f",
        str(KIND_VALUES),
        "--set",
        "worker.autoscaling.enabled=false,worker.replicas=5,worker.concurrency=3,worker.pool=bulk",
    )
    worker = _get(control_plane, ns, "deployment", "nq-notifq-worker")
    assert worker["spec"]["replicas"] == 5
    assert worker["metadata"]["annotations"]["notifq.dev/min-replicas"] == "5"
    assert worker["metadata"]["labels"]["notifq.dev/worker-pool"] == "bulk"
    assert worker["spec"]["template"]["metadata"]["labels"]["notifq.dev/worker-pool"] == "bulk"
    assert worker["spec"]["selector"] == worker_before["spec"]["selector"]
    assert worker["metadata"]["uid"] == worker_before["metadata"]["uid"]  # updated, not replaced
    cm = _get(control_plane, ns, "configmap", "nq-notifq-worker")["data"]
    assert cm["NOTIFQ_CONCURRENCY"] == "3"
    # the same image: the same migration and secrets Jobs (nothing to re-run)
    assert {k: j["metadata"]["uid"] for k, j in _jobs(control_plane, ns).items()} == {
        k: j["metadata"]["uid"] for k, j in jobs.items()
    }
    # generated once, never changed: a second run of the Job keeps every value
    _run_secrets_job(control_plane, ns, jobs["secrets"], workdir)
    assert _secret_data(control_plane, ns, "nq-notifq-generated") == before
    assert "REVISION: 2" in helm("status", name, "-n", ns).stdout


def test_template_and_apply_twice_keep_every_password(
    control_plane: testbed.ControlPlane, helm: Helm, workdir: Path
) -> None:
    """`helm template | kubectl apply` (Tilt, Argo CD) twice: the same bytes, the same
    credentials, and every pod resolves the password Postgres was initialised with."""
    ns = _ns(control_plane, "tpl")

    def render() -> str:  # ClusterIP: the installed release holds the kind NodePort
        # and the cluster-wide APIService of the reports API
        return helm.template(
            "-n", ns, "--set", "api.service.type=ClusterIP", "--set", "api.reports.enabled=false"
        )

    first = render()
    assert render() == first  # no random value rendered
    seen: list[dict[str, str]] = []
    for _ in range(2):
        applied = control_plane.kubectl("apply", "-n", ns, "-f", "-", input=render(), check=False)
        assert applied.returncode == 0, applied.stderr
        # the Job (same name, unchanged) runs again, as a re-created Job or a retry would
        _run_secrets_job(control_plane, ns, _jobs(control_plane, ns)["secrets"], workdir)
        seen.append(_secret_data(control_plane, ns, "nq-notifq-generated"))
    assert seen[0] == seen[1] and len(seen[0]) == 4

    postgres = _get(control_plane, ns, "statefulset", "nq-notifq-postgres")
    pg_env = _resolved_env(control_plane, ns, postgres["spec"]["template"]["spec"]["containers"][0])
    password = pg_env["POSTGRES_PASSWORD"]
    assert password == seen[0]["postgres-password"]
    containers = []
    for kind, name in [
        ("deployment", "nq-notifq-operator"),
        ("deployment", "nq-notifq-api"),
        ("deployment", "nq-notifq-worker"),
    ]:
        spec = _get(control_plane, ns, kind, name)["spec"]["template"]["spec"]
        containers += spec["initContainers"] + spec["containers"]
    containers += _jobs(control_plane, ns)["migrate"]["spec"]["template"]["spec"]["containers"]
    for container in containers:
        env = _resolved_env(control_plane, ns, container)
        assert urlsplit(env["NOTIFQ_DATABASE_URL"]).password == password, container["name"]
        redis_url = urlsplit(env["NOTIFQ_REDIS_URL"])
        assert redis_url.password == seen[0]["redis-password"], container["name"]
    api = _get(control_plane, ns, "deployment", "nq-notifq-api")["spec"]["template"]["spec"]
    api_env = _resolved_env(control_plane, ns, api["containers"][0])
    assert api_env["NOTIFQ_ADMIN_PASSWORD"] == seen[0]["admin-password"]
    assert api_env["NOTIFQ_JWT_SECRET"] == seen[0]["jwt-secret"]


def test_upgrade_from_0_1_0_keeps_its_generated_credentials(
    control_plane: testbed.ControlPlane, helm: Helm, workdir: Path
) -> None:
    """Chart 0.1.0 kept generated credentials in the chart's Secret: they are carried
    over and adopted, so a database initialised with them keeps working."""
    ns = _ns(control_plane, "old")
    legacy = {"jwt-secret": "j" * 48, "admin-password": "a" * 24, "postgres-password": "p" * 32}
    old_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "nq-notifq",
            "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {
                "meta.helm.sh/release-name": "nq",
                "meta.helm.sh/release-namespace": ns,
            },
        },
        "stringData": legacy,
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(old_secret))
    helm(
        "install", "nq", str(CHART), "-n", ns, "-f", str(KIND_VALUES),
        "--set", "api.service.type=ClusterIP",
        # the module's release holds the cluster-wide APIService of the reports API
        "--set", "api.reports.enabled=false",
    )  # fmt: skip
    try:
        _run_secrets_job(control_plane, ns, _jobs(control_plane, ns)["secrets"], workdir)
        generated = _secret_data(control_plane, ns, "nq-notifq-generated")
        assert {k: generated[k] for k in legacy} == legacy
        assert len(generated["redis-password"]) == 32  # new since: generated on upgrade
    finally:
        helm("uninstall", "nq", "-n", ns, check=False)


def test_explicit_credentials_need_no_generated_secret(helm: Helm) -> None:
    values = [
        "--set",
        "api.jwtSecret=" + "j" * 40,
        "--set",
        "api.adminPassword=admin-pass-1234",
        "--set",
        "postgres.inChart.password=pg-pass-1234",
        "--set",
        "redis.inChart.password=redis-pass-1234",
    ]
    docs = [d for d in yaml.safe_load_all(helm.template(*values)) if d]
    assert not [d for d in docs if d["kind"] == "Job" and "secrets" in d["metadata"]["name"]]
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "nq-notifq")
    assert base64.b64decode(secret["data"]["postgres-password"]).decode() == "pg-pass-1234"
    assert "nq-notifq-generated" not in yaml.safe_dump_all(docs)


def test_smtp_relay_values_and_credentials_from_a_secret(helm: Helm) -> None:
    """The relay's settings go to the worker's ConfigMap, its credentials only to a Secret
    read through secretKeyRef (a chart-made one, or an existing one)."""
    relay = ["--set", "worker.smtp.host=relay.internal", "--set", "worker.smtp.security=tls",
             "--set", "worker.smtp.port=465", "--set", "worker.rateLimits.smtp=25",
             "--set-json", 'worker.smtp.domains=["company.com"]']  # fmt: skip
    auth = ["--set", "worker.smtp.auth.username=mailer", "--set", "worker.smtp.auth.password=pw-1"]
    docs = [d for d in yaml.safe_load_all(helm.template(*relay, *auth)) if d]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and "NOTIFQ_SMTP_HOST" in d["data"])
    assert config["data"]["NOTIFQ_SMTP_HOST"] == "relay.internal"
    assert config["data"]["NOTIFQ_SMTP_SECURITY"] == "tls"
    assert config["data"]["NOTIFQ_SMTP_PORT"] == "465"
    assert config["data"]["NOTIFQ_RATE_LIMIT_SMTP"] == "25"
    assert json.loads(config["data"]["NOTIFQ_SMTP_DOMAINS"]) == ["company.com"]
    assert "pw-1" not in json.dumps(config)
    secret = next(
        d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "nq-notifq-smtp"
    )
    assert base64.b64decode(secret["data"]["password"]).decode() == "pw-1"

    def worker_env(docs: list[dict[str, Any]]) -> dict[str, Any]:
        dep = next(
            d
            for d in docs
            if d["kind"] == "Deployment" and d["metadata"]["name"] == "nq-notifq-worker"
        )
        return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}

    env = worker_env(docs)
    assert env["NOTIFQ_SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "nq-notifq-smtp",
        "key": "password",
    }
    assert env["NOTIFQ_SMTP_USERNAME"]["valueFrom"]["secretKeyRef"]["key"] == "username"
    existing = ["--set", "worker.smtp.auth.existingSecret=my-relay"]
    docs = [d for d in yaml.safe_load_all(helm.template(*relay, *existing)) if d]
    assert not [d for d in docs if d["metadata"]["name"] == "nq-notifq-smtp"]
    assert (
        worker_env(docs)["NOTIFQ_SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "my-relay"
    )
    docs = [d for d in yaml.safe_load_all(helm.template(*relay)) if d]  # no AUTH
    assert "NOTIFQ_SMTP_PASSWORD" not in worker_env(docs)


# --- least privilege -------------------------------------------------------------


def test_operator_service_account_runs_a_campaign_and_nothing_more(
    control_plane: testbed.ControlPlane,
    release: tuple[str, str],
    stack_factory: Callable[..., Stack],
    workdir: Path,
) -> None:
    _, ns = release
    kubeconfig = workdir / f"operator-sa-{ns}.kubeconfig"
    token = _token_kubeconfig(control_plane, ns, "nq-notifq-operator", kubeconfig)
    # the operator as the chart's ServiceAccount; workers with no Kubernetes access at all
    # NOTIFQ_WORKER_NAMESPACE and the Lease as the chart sets them: the autoscaler lists
    # Deployments there, the replicas compete for the Lease there
    stack = stack_factory(
        workers=0,
        KUBECONFIG=str(kubeconfig),
        NOTIFQ_MOCK_LATENCY_MS="1",
        NOTIFQ_WORKER_NAMESPACE=ns,
        NOTIFQ_LEADER_LEASE_NAME="nq-notifq-operator",
        NOTIFQ_LEADER_LEASE_NAMESPACE=ns,
    )
    for _ in range(2):
        stack.start_worker(KUBECONFIG=str(workdir / "no-such-kubeconfig"))
    target = _ns(control_plane, "camp")  # cluster-wide: any namespace
    stack.apply(
        campaign(
            "rbac",
            target,
            provider="mock",
            subject="hi {{ recipient }}",
            body="b",
            recipients={"generate": {"count": 500}},
        )
    )
    done = stack.wait_phase(target, "rbac", {"Completed", "CompletedWithFailures"}, timeout=90)
    assert done["status"]["total"] == 500
    assert done["status"]["sent"] + done["status"]["failed"] == 500
    assert stack.operator is not None
    log = stack.operator.log_path.read_text()
    assert "Forbidden" not in log and "status=403" not in log, stack.operator.tail(80)

    # what the autoscaler needs: scale the worker Deployment of its own namespace
    assert (
        _as(control_plane, token, "scale", "deployment/nq-notifq-worker", "-n", ns, "--replicas=3")
        == ""
    )
    assert _as(control_plane, token, "get", "configmap", "nq-notifq-worker", "-n", ns) == ""
    # it won its Lease with exactly the chart's Role
    lease = _get(control_plane, ns, "lease", "nq-notifq-operator")
    assert lease["spec"]["holderIdentity"]
    for resource in ("events", "events.events.k8s.io", "campaigns.notifq.dev/status"):
        assert _as(control_plane, token, "auth", "can-i", "patch", resource, "-n", target) == ""
    # deleting finished Campaigns is its job too (spec.ttlSecondsAfterFinished)
    assert (
        _as(control_plane, token, "auth", "can-i", "delete", "campaigns.notifq.dev", "-n", target)
        == ""
    )
    # and nothing broader
    denied = [
        ("delete", "deployment", "nq-notifq-worker", "-n", ns),
        ("get", "secrets", "-n", ns),
        ("get", "pods", "-A"),
        ("get", "configmaps", "-n", ns),
        ("create", "deployment", "x", "--image=busybox", "-n", ns),
        ("get", "deployments", "-n", target),
        ("create", "namespace", "x-operator"),
        ("get", "leases", "-n", target),
        ("get", "lease", "someone-elses", "-n", ns),
        ("delete", "lease", "nq-notifq-operator", "-n", ns),
    ]
    for args in denied:
        err = _as(control_plane, token, *args)
        assert "Forbidden" in err or "forbidden" in err, (args, err)


def test_api_and_worker_service_accounts(
    control_plane: testbed.ControlPlane, release: tuple[str, str]
) -> None:
    _, ns = release
    token = control_plane.kubectl("create", "token", "nq-notifq-api", "-n", ns).stdout.strip()
    manifest = yaml.safe_dump(
        campaign("api", ns, recipients={"generate": {"count": 3}}, suspend=True)
    )
    assert _as(control_plane, token, "create", "-n", ns, "-f", "-", input=manifest) == ""
    assert _as(control_plane, token, "get", "campaigns", "-n", ns) == ""
    patch = '{"spec":{"suspend":false}}'
    assert (
        _as(control_plane, token, "patch", "campaign", "api", "-n", ns, "--type=merge", "-p", patch)
        == ""
    )
    assert _as(control_plane, token, "delete", "campaign", "api", "-n", ns, "--wait=false") == ""
    # Campaigns in every namespace (each user's own right is checked first, with the
    # SubjectAccessReviews it may create), the namespace list, and nothing else
    other = _ns(control_plane, "other")
    assert _as(control_plane, token, "get", "campaigns", "-n", other) == ""
    for verb, what in [("create", "subjectaccessreviews.authorization.k8s.io"),
                       ("list", "namespaces")]:  # fmt: skip
        assert _as(control_plane, token, "auth", "can-i", verb, what) == ""
    for args in [
        ("get", "secrets", "-n", ns),
        ("get", "pods", "-n", ns),
        ("get", "configmaps", "-n", ns),
        ("get", "deployments", "-n", ns),
        ("get", "namespace", other),
        ("get", "configmaps", "-n", other),
    ]:
        err = _as(control_plane, token, *args, input=manifest.replace(ns, other))
        assert "forbidden" in err.lower(), (args, err)

    # the secrets Job's identity: its generated Secret, and reading the chart's (what
    # chart 0.1.0 generated is adopted from there), nothing else
    token = control_plane.kubectl("create", "token", "nq-notifq-secrets", "-n", ns).stdout.strip()
    assert _as(control_plane, token, "get", "secret", "nq-notifq-generated", "-n", ns) == ""
    assert _as(control_plane, token, "get", "secret", "nq-notifq", "-n", ns) == ""
    for args in [
        ("patch", "secret", "nq-notifq", "-n", ns, "-p", "{}"),
        ("get", "secrets", "-n", ns),
        ("delete", "secret", "nq-notifq-generated", "-n", ns),
        ("get", "secret", "nq-notifq-generated", "-n", other),
    ]:
        assert "forbidden" in _as(control_plane, token, *args).lower(), args

    # the worker's identity can do nothing at all
    token = control_plane.kubectl("create", "token", "nq-notifq-worker", "-n", ns).stdout.strip()
    for args in [("get", "campaigns", "-n", ns), ("get", "configmaps", "-n", ns)]:
        assert "forbidden" in _as(control_plane, token, *args).lower()


def test_uninstall_keeps_the_crd(
    control_plane: testbed.ControlPlane, helm: Helm, release: tuple[str, str]
) -> None:
    name, ns = release
    helm("uninstall", name, "-n", ns)
    left = control_plane.kubectl(
        "get", "deployments,jobs,services,secrets,configmaps,roles", "-n", ns, "-o", "name"
    ).stdout.split()
    # kept, like a PVC: the credentials an existing database was initialised with
    assert [x for x in left if "nq-notifq" in x] == ["secret/nq-notifq-generated"], left
    gone = control_plane.kubectl("get", "clusterrole", f"{ns}-nq-notifq-operator", check=False)
    assert "NotFound" in gone.stderr
    control_plane.kubectl("get", "crd", "campaigns.notifq.dev")
