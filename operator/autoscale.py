"""Applies autoscaling decisions to worker Deployments through ``deployments/scale``.

A loop of its own (not a Kopf handler) lists the Deployments labelled
``notifq.dev/worker-pool`` in one namespace, so the operator needs only a
namespaced Role on Deployments (get/list) and their scale subresource, never a
cluster-wide watch of every Deployment.

Backlog is read from Postgres (the per-chunk counters of active campaigns), not from
Redis: a job is a chunk of up to 500 messages, so job counts misstate the work,
and Postgres is the truth. Suspended and cancelled campaigns do not count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s

from notifq.core.incluster import own_namespace
from notifq.operator import metrics, store
from notifq.operator.context import OperatorContext
from notifq.operator.scaling import POOL_LABEL, Policy, Recommender

log = logging.getLogger(__name__)


async def run(ctx: OperatorContext) -> None:
    """Decide and apply replicas every ``scale_interval`` seconds until cancelled."""
    namespace = own_namespace(ctx.settings.worker_namespace)
    log.info("autoscaling worker Deployments labelled %s in namespace %s", POOL_LABEL, namespace)
    while True:
        try:
            await step(ctx, namespace)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("autoscaling step failed; trying again")
        await asyncio.sleep(ctx.settings.scale_interval)


async def step(ctx: OperatorContext, namespace: str) -> None:
    if ctx.apps_api is None:
        return
    found = await asyncio.to_thread(
        ctx.apps_api.list_namespaced_deployment, namespace, label_selector=POOL_LABEL
    )
    if not found.items:
        return
    backlog = await store.backlog(ctx.pool)
    metrics.BACKLOG.set(backlog)
    for dep in found.items:
        await scale_one(ctx, dep, backlog)


async def scale_one(ctx: OperatorContext, dep: Any, backlog: int) -> None:
    meta = dep.metadata
    current = int(dep.spec.replicas if dep.spec.replicas is not None else 1)
    policy = Policy.from_annotations(meta.annotations or {}, ctx.settings)
    rec = ctx.recommenders.setdefault(meta.uid, Recommender())
    decision = rec.decide(backlog, current, policy, time.monotonic())
    metrics.DESIRED_REPLICAS.labels(meta.namespace, meta.name).set(decision.replicas)
    if decision.replicas == current:
        return
    assert ctx.apps_api is not None
    await asyncio.to_thread(
        ctx.apps_api.patch_namespaced_deployment_scale,
        meta.name,
        meta.namespace,
        {"spec": {"replicas": decision.replicas}},
    )
    direction = "up" if decision.replicas > current else "down"
    metrics.SCALINGS.labels(meta.namespace, meta.name, direction).inc()
    message = f"scaled {direction} from {current} to {decision.replicas}: {decision.reason}"
    log.info("deployment %s/%s %s", meta.namespace, meta.name, message)
    await post_event(ctx, dep, message)


async def post_event(ctx: OperatorContext, dep: Any, message: str) -> None:
    """Record the decision as a Kubernetes Event on the Deployment (best effort)."""
    if ctx.core_api is None:
        return
    meta = dep.metadata
    now = datetime.now(UTC)
    event = k8s.CoreV1Event(
        metadata=k8s.V1ObjectMeta(generate_name=f"{meta.name}.", namespace=meta.namespace),
        involved_object=k8s.V1ObjectReference(
            api_version="apps/v1",
            kind="Deployment",
            name=meta.name,
            namespace=meta.namespace,
            uid=meta.uid,
        ),
        reason="WorkersScaled",
        message=message,
        type="Normal",
        count=1,
        first_timestamp=now,
        last_timestamp=now,
        source=k8s.V1EventSource(component="notifq-operator"),
    )
    try:
        await asyncio.to_thread(ctx.core_api.create_namespaced_event, meta.namespace, event)
    except k8s.ApiException as exc:
        log.warning("could not record scaling event: %s", exc.reason)
