"""Shared fixtures: the real test bed (Postgres, Redis, etcd + kube-apiserver) and
notifq's own processes started against it.

Each service starts once per test session on free loopback ports in a
directory of its own; each test gets its own namespace and campaigns, and the
session its own database and Redis key prefix.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import rbac
import testbed
from harness import Stack

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def workdir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """The session's directory; removed at its end unless ``NOTIFQ_TEST_KEEP`` is set. A
    session with a failed test keeps its processes' logs and the mock provider's delivery
    logs in ``<dir>-logs`` (a rare failure is then still there to read)."""
    keep = os.environ.get("NOTIFQ_TEST_KEEP")
    path = Path(tempfile.mkdtemp(prefix="notifq-test-"))
    yield path
    if keep:
        return
    if request.session.testsfailed:
        logs = keep_logs(path)
        print(f"\n{request.session.testsfailed} test(s) failed: logs kept in {logs}")
    subprocess.run(["rm", "-rf", str(path)], check=False)


def keep_logs(path: Path) -> Path:
    """Copy the ``*.log`` files under ``path`` (processes' output, mock delivery logs)
    into ``<path>-logs``, the same tree; the data directories are left out."""
    dest = path.with_name(path.name + "-logs")
    for log in path.rglob("*.log"):
        if log.is_file():
            target = dest / log.relative_to(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(log.read_bytes())
    return dest


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[testbed.Postgres]:
    pg = testbed.Postgres(workdir / "postgres").start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def redis_server(workdir: Path) -> Iterator[testbed.Redis]:
    r = testbed.Redis(workdir / "redis").start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def database_url(postgres: testbed.Postgres) -> str:
    """A migrated database for the whole session."""
    url = postgres.create_database("notifq_test")
    testbed.migrate(url)
    return url


@pytest.fixture(scope="session")
def control_plane(workdir: Path) -> Iterator[testbed.ControlPlane]:
    cp = testbed.ControlPlane(workdir / "k8s").start()
    testbed.apply_crds(cp)
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def campaign_admins(control_plane: testbed.ControlPlane) -> str:
    """The group of the tests' default API account, with every campaign right (and the
    failed recipients') in every namespace; the API checks each action with Kubernetes."""
    rbac.grant(control_plane, None, rbac.CAMPAIGN_VERBS, group=rbac.ADMINS_GROUP, failures=True)
    return rbac.ADMINS_GROUP


@pytest.fixture
def namespace(control_plane: testbed.ControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    # No controller-manager: nothing garbage-collects, so leave the namespace be.


@pytest.fixture
def stack_factory(
    workdir: Path,
    control_plane: testbed.ControlPlane,
    postgres: testbed.Postgres,
    redis_server: testbed.Redis,
    database_url: str,
) -> Iterator[Callable[..., Stack]]:
    """Build stacks with their own Redis key prefix; stopped when the test ends
    (operators watch every namespace, so two stacks must not outlive one test)."""
    stacks: list[Stack] = []

    def make(workers: int = 2, **env: str) -> Stack:
        prefix = f"nq{uuid.uuid4().hex[:8]}"
        d = workdir / prefix
        d.mkdir()
        base = {
            **os.environ,
            "KUBECONFIG": str(control_plane.kubeconfig),
            "NOTIFQ_DATABASE_URL": database_url,
            "NOTIFQ_REDIS_URL": redis_server.url,
            "NOTIFQ_QUEUE_PREFIX": prefix,
            "NOTIFQ_ENVIRONMENT": "test",
            "NOTIFQ_METRICS_PORT": "0",
            "NOTIFQ_MOCK_LATENCY_MS": "5",
            "NOTIFQ_MOCK_FAILURE_RATE": "0.2",
            "NOTIFQ_STATUS_INTERVAL": "0.5",
            "NOTIFQ_REQUEUE_INTERVAL": "5",
            "NOTIFQ_MOCK_LOG_DIR": str(d / "mock-log"),
            # each stack's operators compete for a Lease of their own
            "NOTIFQ_LEADER_LEASE_NAME": f"{prefix}-operator",
            **env,
        }
        stack = Stack(d, base, control_plane, database_url)
        stacks.append(stack)
        stack.start_operator()
        for _ in range(workers):
            stack.start_worker()
        return stack

    started = datetime.now(UTC) - timedelta(seconds=1)  # creationTimestamp has 1 s resolution
    yield make
    for s in stacks:
        s.stop()
    if stacks:
        _delete_campaigns_since(control_plane, started)


def _delete_campaigns_since(cp: testbed.ControlPlane, since: datetime) -> None:
    """Delete the Campaigns a test created: the next test's operator watches every
    namespace and would otherwise resume their unfinished work beside its own."""
    out = cp.kubectl("get", "campaigns", "-A", "-o", "json", check=False)
    if out.returncode != 0:
        return
    names: dict[str, list[str]] = {}
    for item in json.loads(out.stdout)["items"]:
        meta = item["metadata"]
        if datetime.fromisoformat(meta["creationTimestamp"]) >= since:
            names.setdefault(meta["namespace"], []).append(meta["name"])
    for ns, batch in names.items():
        cp.kubectl("delete", "campaign", *batch, "-n", ns, "--wait=false", check=False)


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory()
