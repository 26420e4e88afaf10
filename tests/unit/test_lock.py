"""The lock files agree with pyproject.toml: every declared dependency is pinned there,
at a version its specifier allows, and the image's lock is the same versions as the tests'.

A change to pyproject.toml without `make lock` fails here instead of installing an
untested stack on the next fresh machine.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;]+)", re.MULTILINE)


def pins(name: str) -> dict[str, Version]:
    text = (ROOT / "requirements" / name).read_text()
    found: dict[str, Version] = {canonicalize_name(n): Version(v) for n, v in PIN.findall(text)}
    assert found, f"no pins in requirements/{name}"
    return found


def declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    if extra:
        reqs += project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def unmet(reqs: list[Requirement], locked: dict[str, Version]) -> list[str]:
    problems = []
    for req in reqs:
        version = locked.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req} is not locked")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req} but the lock pins {version}")
    return problems


def test_dev_lock_satisfies_pyproject() -> None:
    assert unmet(declared("dev"), pins("dev.txt")) == []


def test_runtime_lock_satisfies_pyproject() -> None:
    assert unmet(declared(None), pins("runtime.txt")) == []


def test_runtime_lock_is_the_tested_versions() -> None:
    dev, runtime = pins("dev.txt"), pins("runtime.txt")
    assert {n: v for n, v in runtime.items() if dev.get(n) != v} == {}


def test_a_stale_lock_is_caught() -> None:
    """The check itself: a pin outside the specifier and a missing package are reported."""
    locked = {"kubernetes": Version("37.0.0")}
    reqs = [Requirement("kubernetes>=33,<37"), Requirement("redis>=5.2")]
    assert unmet(reqs, locked) == [
        "kubernetes<37,>=33 but the lock pins 37.0.0",
        "redis>=5.2 is not locked",
    ]
