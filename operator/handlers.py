"""Kopf handlers: thin adapters from Kopf's callbacks to :mod:`reconcile`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import kopf

from notifq.core.resource import GROUP, PLURAL, VERSION
from notifq.core.settings import get_operator_settings
from notifq.operator import autoscale, metrics, reconcile
from notifq.operator.context import OperatorContext

log = logging.getLogger(__name__)

_settings = get_operator_settings()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Tune Kopf for production and open the shared clients."""
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 30
    settings.persistence.finalizer = "notifq.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="notifq.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="notifq.dev", key="last-handled-configuration"
    )
    memo.ctx = await OperatorContext.open(_settings)
    memo.autoscaler = asyncio.create_task(autoscale.run(memo.ctx), name="autoscaler")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("autoscaler")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    ctx: OperatorContext | None = memo.get("ctx")
    if ctx is not None:
        await ctx.close()


def _resource(body: kopf.Body) -> reconcile.Resource:
    meta = body.get("metadata", {})
    return reconcile.Resource(
        uid=uuid.UUID(meta["uid"]),
        namespace=meta.get("namespace", "default"),
        name=meta["name"],
        generation=int(meta.get("generation", 1)),
        spec=body.get("spec", {}),
        status=body.get("status", {}),
        annotations=meta.get("annotations", {}),
    )


@kopf.timer(
    GROUP,
    VERSION,
    PLURAL,
    id="reconcile",
    interval=_settings.status_interval,
    initial_delay=0.0,
    backoff=2.0,
)
async def reconcile_campaign(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Store, enqueue, follow intent and report status, idempotently."""
    try:
        new_status = await reconcile.reconcile(memo.ctx, _resource(body))
    except Exception:
        metrics.RECONCILES.labels("error").inc()
        raise
    metrics.RECONCILES.labels("ok").inc()
    if new_status is not None:
        for key, value in new_status.items():
            patch.status[key] = value


@kopf.on.delete(GROUP, VERSION, PLURAL, id="stop-delivery", backoff=2.0)
async def stop_delivery(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A deleted campaign sends nothing more."""
    await reconcile.on_delete(memo.ctx, _resource(body))
