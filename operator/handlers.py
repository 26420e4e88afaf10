"""Kopf handlers: thin adapters from Kopf's callbacks to :mod:`supervisor`.

Only watch-event handlers: no timer, daemon or on-delete handler, because each
of those makes Kopf put a finalizer on every Campaign, and a finalizer left
behind by an uninstalled operator blocks deleting Campaigns, their namespace
and the CRD (see :mod:`notifq.operator.supervisor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from notifq.core.resource import GROUP, PLURAL, POLICY_PLURAL, VERSION
from notifq.core.settings import get_operator_settings
from notifq.operator import autoscale, retention
from notifq.operator.context import OperatorContext
from notifq.operator.diffbase import NoDiffBaseStorage
from notifq.operator.feedback import FeedbackConsumer
from notifq.operator.supervisor import Supervisor

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
    # The finalizer of earlier releases: with no handler needing one, Kopf removes it
    # from every Campaign it sees, so upgraded installations lose it too.
    settings.persistence.finalizer = "notifq.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="notifq.dev")
    settings.persistence.diffbase_storage = NoDiffBaseStorage()  # no spec copy in annotations
    memo.ctx = await OperatorContext.open(_settings)
    memo.autoscaler = asyncio.create_task(autoscale.run(memo.ctx), name="autoscaler")
    memo.supervisor = Supervisor(memo.ctx)
    memo.orphans = asyncio.create_task(memo.supervisor.sweep_orphans_forever(), name="orphans")
    memo.retention = asyncio.create_task(retention.run(memo.ctx), name="retention")
    memo.feedback = FeedbackConsumer(_settings, memo.ctx.pool)  # the leader's only
    memo.feedback.start(asyncio.get_running_loop())


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    consumer: FeedbackConsumer | None = memo.get("feedback")
    if consumer is not None:
        consumer.stop()
    for name in ("autoscaler", "orphans", "retention"):
        task: asyncio.Task[None] | None = memo.get(name)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    supervisor: Supervisor | None = memo.get("supervisor")
    if supervisor is not None:
        await supervisor.close()
    ctx: OperatorContext | None = memo.get("ctx")
    if ctx is not None:
        await ctx.close()


@kopf.on.event(GROUP, VERSION, PLURAL, id="campaigns")
async def campaign_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Every watch event of a Campaign goes to the supervisor (no finalizer needed)."""
    supervisor: Supervisor = memo.supervisor
    supervisor.observe(type, body)


@kopf.on.event(GROUP, VERSION, POLICY_PLURAL, id="policies")
async def policy_event(memo: kopf.Memo, **_: Any) -> None:
    """A NotifqPolicy changed: campaigns waiting for a slot look again at once."""
    supervisor: Supervisor | None = memo.get("supervisor")
    if supervisor is not None:
        supervisor.policy_changed()
