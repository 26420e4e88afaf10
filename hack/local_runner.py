"""A stand-in for the kubelet, for local runs only (``make demo``, e2e tests).

The local control plane has no controller-manager or kubelet, so a worker
Deployment never gets Pods. This runner watches Deployments labelled
``notifq.dev/worker-pool`` and keeps as many local ``notifq-worker`` processes
alive as each one's ``spec.replicas`` says: scaling up starts processes,
scaling down sends SIGTERM (workers drain, then exit). A development tool,
not part of the product.

Usage: ``python hack/local_runner.py --namespace NS [--logs DIR]`` with
KUBECONFIG and the NOTIFQ_* variables of the workers in the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import testbed

from notifq.core.resource import WORKER_POOL_LABEL

LABEL = WORKER_POOL_LABEL


class Runner:
    def __init__(self, namespace: str, logs: Path, env: dict[str, str], kubectl: str) -> None:
        self.namespace = namespace
        self.logs = logs
        self.env = env
        self.kubectl = kubectl
        self.pools: dict[str, list[testbed.Proc]] = {}
        self.started = 0

    def desired(self) -> dict[str, int]:
        out = subprocess.run(
            [self.kubectl, "get", "deployments", "-n", self.namespace, "-l", LABEL, "-o", "json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if out.returncode != 0:
            return {name: len(procs) for name, procs in self.pools.items()}  # keep as is
        items = json.loads(out.stdout)["items"]
        return {d["metadata"]["name"]: int(d["spec"].get("replicas", 1)) for d in items}

    def step(self) -> None:
        want = self.desired()
        for name in set(self.pools) | set(want):
            procs = [p for p in self.pools.get(name, []) if p.alive()]
            target = want.get(name, 0)
            while len(procs) < target:
                self.started += 1
                procs.append(
                    testbed.Proc(
                        f"{name}-{self.started}",
                        [sys.executable, "-m", "notifq.worker.main"],
                        self.logs / f"{name}-{self.started}.log",
                        env=self.env,
                    ).start()
                )
                print(
                    f"{time.strftime('%H:%M:%S')} {name}: started worker ({len(procs)}/{target})",
                    flush=True,
                )
            while len(procs) > target:
                p = procs.pop()
                p.send_signal(signal.SIGTERM)  # drains in-flight work, then exits
                print(
                    f"{time.strftime('%H:%M:%S')} {name}: stopping worker ({len(procs)}/{target})",
                    flush=True,
                )
            self.pools[name] = procs

    def stop(self) -> None:
        procs = [p for ps in self.pools.values() for p in ps]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.stop(signal.SIGTERM, timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--logs", type=Path, default=Path("local-runner-logs"))
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    kubectl = os.environ.get("KUBECTL") or str(testbed.control_plane_bin() / "kubectl")
    runner = Runner(args.namespace, args.logs, dict(os.environ), kubectl)
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop:
        runner.step()
        time.sleep(args.interval)
    runner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
