"""Autoscaling against the real control plane: the operator sets a labelled worker
Deployment's replicas through the scale subresource from the backlog, the local
runner (hack/local_runner.py) turns replicas into worker processes, and replicas
return to the minimum after the stabilization window."""

from __future__ import annotations

import itertools
import json
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable

import testbed
import yaml
from harness import ROOT, Stack, campaign

N = 20_000


def deployment(namespace: str) -> dict[str, object]:
    labels = {"app.kubernetes.io/name": "notifq-worker", "notifq.dev/worker-pool": "default"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "workers",
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                "notifq.dev/min-replicas": "1",
                "notifq.dev/max-replicas": "3",
                "notifq.dev/target-backlog-per-replica": "3000",
            },
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "worker", "image": "notifq:dev", "args": ["notifq-worker"]}
                    ]
                },
            },
        },
    }


def test_replicas_follow_the_backlog(stack_factory: Callable[..., Stack], namespace: str) -> None:
    stack = stack_factory(
        workers=0,
        NOTIFQ_SCALE_INTERVAL="1",
        NOTIFQ_WORKER_NAMESPACE=namespace,
        NOTIFQ_SCALE_DOWN_WINDOW="6",
        NOTIFQ_MOCK_LATENCY_MS="200",
        NOTIFQ_MOCK_FAILURE_RATE="0",
        NOTIFQ_MAX_IN_FLIGHT="100",
        NOTIFQ_WRITE_BATCH="50",
    )
    cp = stack.control_plane
    cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(deployment(namespace)))
    runner = testbed.Proc(
        "runner",
        [
            sys.executable,
            str(ROOT / "hack" / "local_runner.py"),
            "--namespace",
            namespace,
            "--logs",
            str(stack.workdir / "runner"),
        ],
        stack.workdir / "runner.log",
        env={**stack.env, "KUBECTL": str(cp.bindir / "kubectl")},
    ).start()
    try:
        stack.apply(campaign("scale", namespace, recipients={"generate": {"count": N}}))

        def replicas() -> int:
            out = cp.kubectl("get", "deployment", "workers", "-n", namespace, "-o", "json")
            return int(json.loads(out.stdout)["spec"]["replicas"])

        samples: list[tuple[float, int, int]] = []
        phase = ""
        t_end = time.monotonic() + 180
        while phase not in {"Completed", "CompletedWithFailures"} and time.monotonic() < t_end:
            st = stack.get(namespace, "scale").get("status", {})
            phase = st.get("phase", "")
            samples.append(
                (time.monotonic(), replicas(), int(st.get("sent", 0)) + int(st.get("failed", 0)))
            )
            time.sleep(0.5)
        assert phase == "Completed"
        seen = [r for _, r, _ in samples]
        assert seen[0] == 1 and max(seen) == 3, seen
        # throughput per replica count, for the record
        rate: dict[int, list[float]] = defaultdict(list)
        for (t0, r0, d0), (t1, _, d1) in itertools.pairwise(samples):
            if d1 > d0:
                rate[r0].append((d1 - d0) / (t1 - t0))
        print("\nmsgs/s by replicas:", {r: round(sum(v) / len(v)) for r, v in sorted(rate.items())})
        # the queue is empty: back to min once the stabilization window has passed
        testbed.wait_for(lambda: replicas() == 1, 30, "replicas back to min", interval=0.5)
        events = cp.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        reasons = [e.get("reason") for e in json.loads(events)["items"]]
        assert "WorkersScaled" in reasons
        log = runner.log_path.read_text()
        assert log.count("started worker") >= 3 and "stopping worker" in log
    finally:
        runner.stop(signal.SIGTERM, timeout=60)
