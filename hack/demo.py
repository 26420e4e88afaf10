"""``make demo``: one campaign end to end on a local control plane, with live progress.

Starts Postgres, Redis, etcd and kube-apiserver (hack/testbed.py), migrates the
database, applies the CRD and a worker Deployment (1 to ``--workers`` replicas),
runs the operator and the local runner (hack/local_runner.py keeps as many
worker processes alive as the Deployment's replicas: there is no kubelet here),
applies a 10,000-recipient mock campaign (200 ms latency, 20 %
failures, as the reference service's mock) and prints the resource's status
every second, with the worker replicas the operator chose, until it reaches a
final phase. Ctrl-C stops everything.

Options: ``--count N``, ``--workers N``, ``--latency-ms MS``, ``--failure-rate R``,
``--keep`` (leave the processes running until Ctrl-C after the campaign ends).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

import testbed

from notifq.core.phases import FINAL_PHASES
from notifq.core.resource import API_VERSION, WORKER_POOL_LABEL

ROOT = testbed.ROOT


def worker_deployment(max_replicas: int) -> dict[str, object]:
    labels = {"app.kubernetes.io/name": "notifq-worker", WORKER_POOL_LABEL: "default"}
    annotations = {
        "notifq.dev/min-replicas": "1",
        "notifq.dev/max-replicas": str(max_replicas),
        "notifq.dev/target-backlog-per-replica": "2000",
    }
    container = {"name": "worker", "image": "notifq:dev", "args": ["notifq-worker"]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "notifq-worker",
            "namespace": "default",
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def replicas(cp: testbed.ControlPlane) -> str:
    out = cp.kubectl(
        "get", "deployment", "notifq-worker", "-o", "jsonpath={.spec.replicas}", check=False
    )
    return out.stdout.strip() or "?"


def bar(done: float, width: int = 30) -> str:
    filled = int(done * width)
    return "#" * filled + "." * (width - filled)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--failure-rate", type=float, default=0.2)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    workdir = ROOT / ".demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    logs = workdir / "logs"
    logs.mkdir()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        print(
            "starting Postgres, Redis, etcd and kube-apiserver; migrating; the CRD ...", flush=True
        )
        with testbed.Services(workdir) as services:
            env = services.env(
                NOTIFQ_MOCK_LATENCY_MS=str(args.latency_ms),
                NOTIFQ_MOCK_FAILURE_RATE=str(args.failure_rate),
                NOTIFQ_SCALE_INTERVAL="1",
                NOTIFQ_SCALE_DOWN_WINDOW="10",
            )
            cp = services.control_plane
            with testbed.Stack(logs, env, cp, services.database_url) as stack:
                try:
                    return run(args, cp, stack, logs, workdir)
                finally:
                    print("\nstopping notifq processes and the test bed ...", flush=True)
    except KeyboardInterrupt:
        return 130


def run(
    args: argparse.Namespace,
    cp: testbed.ControlPlane,
    stack: testbed.Stack,
    logs: Path,
    workdir: Path,
) -> int:
    stack.start_operator()
    # The worker Deployment the operator scales; with no kubelet here, the local
    # runner keeps as many worker processes alive as its spec.replicas says.
    cp.kubectl("apply", "-f", "-", input=json.dumps(worker_deployment(args.workers)))
    stack.start_local_runner(logs)
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {
            "subject": "Hello {{ recipient }}",
            "body": "Message {{ index }} of campaign {{ campaign }}.",
            "recipients": {"generate": {"count": args.count}},
        },
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    print(
        f"applied Campaign 'demo' ({args.count} recipients, 1 to {args.workers} workers, "
        f"mock latency {args.latency_ms:g} ms, failure rate {args.failure_rate:g})\n",
        flush=True,
    )
    print(
        f"{'TIME':>6}  {'PHASE':<22} {'TOTAL':>7} {'SENT':>7} {'FAILED':>7} "
        f"{'PENDING':>7} {'WORKERS':>7}  PROGRESS",
        flush=True,
    )
    t0 = time.monotonic()
    status: dict[str, object] = {}
    while True:
        out = cp.kubectl("get", "campaign", "demo", "-o", "json", check=False)
        if out.returncode == 0:
            status = json.loads(out.stdout).get("status", {})
        total = int(status.get("total", 0) or 0)  # type: ignore[call-overload]
        sent = int(status.get("sent", 0) or 0)  # type: ignore[call-overload]
        failed = int(status.get("failed", 0) or 0)  # type: ignore[call-overload]
        pending = int(status.get("pending", 0) or 0)  # type: ignore[call-overload]
        phase = str(status.get("phase", "-"))
        frac = (sent + failed) / total if total else 0.0
        print(
            f"{time.monotonic() - t0:5.1f}s  {phase:<22} {total:>7} {sent:>7} {failed:>7} "
            f"{pending:>7} {replicas(cp):>7}  [{bar(frac)}] {status.get('progress', '0%')}",
            flush=True,
        )
        if phase in FINAL_PHASES:
            break
        for p in stack.processes():
            if not p.alive():
                print(f"{p.name} exited unexpectedly:\n{p.tail()}", file=sys.stderr)
                return 1
        time.sleep(1)
    elapsed = time.monotonic() - t0
    print(
        f"\nfinal: {phase} — {sent} sent, {failed} failed of {total} in {elapsed:.1f}s "
        f"({total / elapsed:.0f} msgs/s)"
    )
    print(f"status message: {status.get('message')}")
    print(f"logs: {logs}/ (operator, local-runner, notifq-worker-*); test bed: {workdir}/")
    print(f"kubectl: KUBECONFIG={cp.kubeconfig} kubectl get campaigns")
    if args.keep:
        print("--keep: processes stay up; Ctrl-C to stop", flush=True)
        testbed.wait_for_signal()
    return 0


if __name__ == "__main__":
    sys.exit(main())
