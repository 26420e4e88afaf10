"""Fixtures of the cluster suite: a real one-node cluster (hack/cluster.py) for the session.

The suite never skips: when the node cannot come up, every test fails with the
cluster's own error and the tail of its logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cluster as node
import pytest
from cluster_client import Kube

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    script = [sys.executable, str(ROOT / "hack" / "cluster.py")]
    up = subprocess.run([*script, "up"], capture_output=True, text=True, check=False)
    if up.returncode != 0:
        logs = node.STATE / "logs"
        tails = "".join(
            f"\n--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
            for p in sorted(logs.glob("*.log"))
        )
        subprocess.run([*script, "down", "--keep"], capture_output=True, check=False)
        pytest.fail(f"hack/cluster.py up failed:\n{up.stderr[-6000:]}{tails}", pytrace=False)
    cp_bin, _ = node.build_binaries()
    yield Kube(cp_bin, node.STATE / "kubeconfig")
    keep = ["--keep"] if os.environ.get("NOTIFQ_TEST_KEEP") else []
    subprocess.run([*script, "down", *keep], capture_output=True, check=False)


@pytest.fixture(scope="session")
def mock_log_dir() -> Iterator[Path]:
    """World-writable host directory the workers' mock provider logs into (by pod)."""
    path = Path(tempfile.mkdtemp(prefix="notifq-mock-log-", dir="/var/tmp"))
    path.chmod(0o777)
    yield path
    if not os.environ.get("NOTIFQ_TEST_KEEP"):
        subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture(scope="session")
def results() -> Path:
    """Where the suite leaves what a person reads afterwards (watch output, pod lists)."""
    path = Path(os.environ.get("NOTIFQ_CLUSTER_RESULTS", "/var/tmp/notifq-cluster-results"))
    path.mkdir(parents=True, exist_ok=True)
    return path
