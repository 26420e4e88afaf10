"""Entry point: ``notifq-operator`` runs the Kopf operator.

With leader election (the default) several replicas may run: each stands by
until it holds the operator Lease (:mod:`notifq.operator.leader`), and only then
starts Kopf (its handlers, timers and the autoscaler). A leader that loses the
Lease cancels Kopf and exits non-zero at once, so Kubernetes restarts it as a
standby; one stopped by SIGTERM lets Kopf finish, then releases the Lease so a
standby takes over within one retry interval. See docs/operator-ha.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any

import kopf
from kubernetes import client as k8s
from prometheus_client import start_http_server

from notifq.core.incluster import own_namespace
from notifq.core.settings import OperatorSettings, get_operator_settings
from notifq.operator import health, metrics
from notifq.operator.context import kube_api_client
from notifq.operator.leader import LeaderElector

log = logging.getLogger(__name__)

STOP_GRACE = 1.0
"""Seconds a leader that lost its Lease gives Kopf's cancellation before it exits anyway."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="notifq-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        help="watch only these namespaces (default: all)",
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("NOTIFQ_LIVENESS_ENDPOINT", "http://0.0.0.0:8080/healthz"),
        help="health endpoint URL, served by leader and standby ('' to disable)",
    )
    args = parser.parse_args(argv)
    settings = get_operator_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # one "Timer succeeded" line per campaign per second is noise; keep warnings
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    from notifq.operator import handlers  # noqa: F401 - registers the handlers

    kopf_args: dict[str, Any] = {
        # no peering: at most one replica runs Kopf (the Lease holder, or the only one)
        "standalone": True,
        "clusterwide": args.namespace is None,
        "namespaces": args.namespace or [],
    }
    sys.exit(asyncio.run(run(settings, kopf_args, args.liveness)))


async def run(settings: OperatorSettings, kopf_args: dict[str, Any], liveness: str) -> int:
    """Run Kopf (with leader election: only while holding the Lease); the exit status."""
    if not settings.leader_election:
        runner = await health.serve(liveness, lambda: (True, {})) if liveness else None
        try:
            await kopf.operator(**kopf_args)
        finally:
            if runner is not None:
                await runner.cleanup()
        return 0

    api = kube_api_client()
    if api is None:
        log.error("leader election needs the Kubernetes API (or NOTIFQ_LEADER_ELECTION=false)")
        return 2
    namespace = own_namespace(settings.leader_lease_namespace)
    replica = Replica(
        LeaderElector.from_settings(k8s.CoordinationV1Api(api), settings, namespace), kopf_args
    )
    runner = await health.serve(liveness, replica.status) if liveness else None
    try:
        return await replica.run()
    finally:
        if runner is not None:
            await runner.cleanup()
        replica.elector.close()


class Replica:
    """One operator replica: standby until it holds the Lease, then Kopf until it does not."""

    def __init__(self, elector: LeaderElector, kopf_args: dict[str, Any]) -> None:
        self.elector = elector
        self.kopf_args = kopf_args
        self.kopf: asyncio.Task[None] | None = None

    def status(self) -> tuple[bool, dict[str, object]]:
        """Healthy: the Lease loop is alive and, on the leader, Kopf runs."""
        running = self.kopf is not None and not self.kopf.done()
        ok = self.elector.healthy() and (running or not self.elector.is_leader)
        return ok, {"leader": self.elector.is_leader, "holder": self.elector.holder}

    async def run(self) -> int:
        stopping = asyncio.Event()
        self._route_signals(stopping)
        if not await self.elector.acquire(stopping):
            log.info("stopped while standing by")
            return 0
        metrics.LEADER.set(1)
        # tasks made before Kopf starts are left alone by Kopf's shutdown; the renewal
        # runs on a thread of its own, so a busy event loop never costs the Lease
        renewing = threading.Event()
        holding = asyncio.create_task(
            self.elector.hold_on_own_thread(renewing), name="lease renewal"
        )
        ready = asyncio.Event()
        started = asyncio.create_task(ready.wait(), name="kopf started")
        self.kopf = asyncio.create_task(
            kopf.operator(stop_flag=stopping, ready_flag=ready, **self.kopf_args), name="kopf"
        )
        waiting = {holding, self.kopf, started}
        while not self.kopf.done():
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if holding in done:
                await self.lost(holding)
            if started in done:
                # Kopf took the signal handlers over at its start; hand them back to the
                # stop flag, so a SIGTERM stops Kopf through it (else Kopf's own waiter on
                # the flag lingers through its 5 s shutdown grace)
                self._route_signals(stopping)
                waiting.discard(started)
        started.cancel()
        renewing.set()  # the renewal thread ends within one renew interval
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(holding), self.elector.renew_interval + 5)
        await self.elector.release()
        metrics.LEADER.set(0)
        self.kopf.result()  # Kopf's own failure, if any, fails the process
        return 0

    @staticmethod
    def _route_signals(stopping: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)

    async def lost(self, holding: asyncio.Task[str]) -> None:
        """The Lease is gone: stop working at once and exit non-zero (the pod restarts)."""
        metrics.LEADER.set(0)
        try:
            why = holding.result()
        except Exception as exc:  # a bug in the renewal loop counts as a loss too
            why = repr(exc)
        log.error(
            "lost Lease %s/%s: %s; stopping Kopf at once and exiting",
            self.elector.namespace,
            self.elector.name,
            why,
        )
        assert self.kopf is not None
        self.kopf.cancel()
        # no graceful shutdown: another replica may lead within seconds, so whatever
        # Kopf has not finished after STOP_GRACE dies with the process
        await asyncio.wait({self.kopf}, timeout=STOP_GRACE)
        logging.shutdown()
        os._exit(1)


if __name__ == "__main__":
    main()
