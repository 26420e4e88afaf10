"""Test harness: notifq's processes on the test bed and helpers to drive them."""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))

import testbed  # noqa: E402

PY = sys.executable


@dataclass
class Stack:
    """notifq's processes (operator, workers) running against the test bed."""

    workdir: Path
    env: dict[str, str]
    control_plane: testbed.ControlPlane
    postgres: testbed.Postgres
    redis: testbed.Redis
    database_url: str
    operator: testbed.Proc | None = None
    workers: list[testbed.Proc] = field(default_factory=list)
    _n: int = 0

    def start_operator(self) -> testbed.Proc:
        self._n += 1
        self.operator = testbed.Proc(
            f"operator-{self._n}",
            [PY, "-m", "notifq.operator.main", "--liveness", ""],
            self.workdir / f"operator-{self._n}.log",
            env=self.env,
        ).start()
        return self.operator

    def start_worker(self, **env: str) -> testbed.Proc:
        self._n += 1
        proc = testbed.Proc(
            f"worker-{self._n}",
            [PY, "-m", "notifq.worker.main"],
            self.workdir / f"worker-{self._n}.log",
            env={**self.env, **env},
        ).start()
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        procs = [*self.workers, *([self.operator] if self.operator else [])]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.stop(signal.SIGTERM, timeout=30)

    # helpers ---------------------------------------------------------------
    def apply(self, manifest: dict[str, Any]) -> None:
        self.control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        out = self.control_plane.kubectl("get", "campaign", name, "-n", namespace, "-o", "json")
        return dict(json.loads(out.stdout))

    def wait_phase(
        self, namespace: str, name: str, phases: set[str], timeout: float = 120
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def done() -> bool:
            nonlocal last
            last = self.get(namespace, name)
            return last.get("status", {}).get("phase") in phases

        try:
            testbed.wait_for(done, timeout, f"campaign {name} to reach {phases}", interval=0.5)
        except TimeoutError as exc:
            raise AssertionError(
                f"{exc}\nstatus: {last.get('status')}\n"
                f"operator log:\n{self.operator.tail() if self.operator else ''}"
            ) from exc
        return last

    def db(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True)

    def counts(self, uid: str) -> dict[str, int]:
        with self.db() as conn:
            rows = conn.execute(
                "SELECT status, count(*) FROM message WHERE campaign_id = %s GROUP BY status",
                (uid,),
            ).fetchall()
        return {str(s): int(n) for s, n in rows}


def campaign(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A Campaign manifest."""
    return {
        "apiVersion": "notifq.dev/v1alpha1",
        "kind": "Campaign",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    testbed.wait_for(predicate, timeout, what, interval=0.2)


def mock_log(stack: Stack) -> Counter[str]:
    """Every send the mock provider accepted, by recipient."""
    seen: Counter[str] = Counter()
    for path in (stack.workdir / "mock-log").glob("deliveries-*.log"):
        for line in path.read_text().splitlines():
            seen[line.split("\t", 1)[1]] += 1
    return seen


def assert_status_matches_db(stack: Stack, ns: str, name: str) -> dict[str, int]:
    cr = stack.get(ns, name)
    counts = stack.counts(cr["metadata"]["uid"])
    st = cr["status"]
    assert st["total"] == sum(counts.values())
    for key in ("pending", "sent", "failed", "cancelled"):
        assert st[key] == counts.get(key, 0), (key, st, counts)
    return counts
