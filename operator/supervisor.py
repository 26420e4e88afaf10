"""One reconciling task per Campaign that has work left; no finalizer on any Campaign.

Kopf's timers would put a finalizer on every Campaign (a timer must be stopped
before its object goes), and a finalizer outlives the operator: after
``helm uninstall``, ``kubectl delete crd`` or deleting a namespace would hang.
So the operator only watches (``@kopf.on.event``, which needs no finalizer) and
runs its own loops:

- a task per unsettled Campaign reconciles it every ``status_interval`` seconds
  (sooner when its spec or retry annotation changes) and patches its status;
  it ends when the campaign is final, so settled campaigns cost nothing;
- a deleted Campaign (its DELETED event, or a ``deletionTimestamp``) is
  cancelled and marked deleted in Postgres, whether or not it was stored yet;
- every ``orphan_sweep_interval`` seconds, unfinished campaign rows whose
  Campaign no longer exists (deleted while no operator watched) are cancelled;
- each status change posts the Events it deserves (:mod:`events`), so
  ``kubectl describe campaign`` tells the story;
- a finished Campaign with ``spec.ttlSecondsAfterFinished`` gets a sleeping
  task that deletes it when the time is up (one timer, no polling).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from notifq.operator import events, metrics, reconcile
from notifq.operator.context import OperatorContext
from notifq.operator.diffbase import LEGACY_ANNOTATION
from notifq.operator.reconcile import Resource
from notifq.operator.status import parse_time

log = logging.getLogger(__name__)

ERROR_BACKOFF = 2.0
"""Seconds before a failed reconciliation or deletion is tried again."""

URGENT = (
    "phase",
    "observedGeneration",
    "retry",
    "startTime",
    "completionTime",
    "quota",
    "reputationGuard",
)
"""Status fields patched at once when they change; the rest (counts, progress, the
human message) waits for ``status_patch_interval``."""


def urgent(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a status patch carries more than counts: patch it without delay."""
    return any(k in new and old.get(k) != new[k] for k in URGENT)


def merge_patch(status: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` after a JSON merge patch of its top-level keys."""
    out = dict(status)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


class Supervisor:
    """Reconciles every Campaign it is told about through :meth:`observe`."""

    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self.latest: dict[uuid.UUID, Resource] = {}
        """The newest body seen of each campaign that has a task."""
        self.tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.wake: dict[uuid.UUID, asyncio.Event] = {}
        self.background: set[asyncio.Task[None]] = set()
        self.expiry: dict[uuid.UUID, asyncio.Task[None]] = {}
        """Deletions waiting for ``ttlSecondsAfterFinished``, by campaign."""
        self.patched: dict[uuid.UUID, float] = {}
        """When each campaign's status was last patched (monotonic seconds)."""
        ctx.slots.on_free = self.wake_waiting

    def wake_waiting(self, namespace: str) -> None:
        """Campaigns of ``namespace`` waiting for a slot look again (one may have freed)."""
        for uid in list(self.ctx.slots.waiting.get(namespace, {})):
            wake = self.wake.get(uid)
            if wake is not None:
                wake.set()

    def policy_changed(self) -> None:
        """A NotifqPolicy changed: read policies again, and every waiting campaign looks."""
        if self.ctx.policies is not None:
            self.ctx.policies.invalidate()
        for namespace in list(self.ctx.slots.waiting):
            self.wake_waiting(namespace)

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event (``None`` for the initial listing); never blocks, never raises."""
        res = Resource.from_body(body)
        if event_type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp"):
            self._deleted(res)
            return
        if LEGACY_ANNOTATION in res.annotations:
            self._spawn(self._drop_legacy(res), f"annotation {res.namespace}/{res.name}")
        prev = self.latest.get(res.uid)
        if res.uid not in self.tasks:
            if res.settled:
                self._expire_later(res)
                return
            self._keep(res.uid)
            self.latest[res.uid] = res
            self.wake[res.uid] = asyncio.Event()
            self.tasks[res.uid] = asyncio.create_task(
                self._run(res.uid), name=f"campaign {res.namespace}/{res.name}"
            )
            return
        self.latest[res.uid] = res
        if res.spec.get("cancel") and not (prev is not None and prev.spec.get("cancel")):
            # stop the sends now, not after the campaign's current reconcile step
            self._spawn(self._stop(res), f"stop {res.namespace}/{res.name}")
        if prev is None or (prev.generation, prev.retry_token) != (
            res.generation,
            res.retry_token,
        ):
            self.wake[res.uid].set()

    def _expire_later(self, res: Resource) -> None:
        """Delete a finished campaign ``ttlSecondsAfterFinished`` after its completion."""
        ttl = res.spec.get("ttlSecondsAfterFinished")
        done = parse_time(res.status.get("completionTime"))
        if ttl is None or done is None or res.uid in self.expiry:
            return
        delay = max(0.0, (done - datetime.now(UTC)).total_seconds() + int(ttl))
        task = asyncio.create_task(self._expire(res, delay), name=f"ttl {res.name}")
        self.expiry[res.uid] = task
        task.add_done_callback(lambda _: self.expiry.pop(res.uid, None))

    def _keep(self, uid: uuid.UUID) -> None:
        """The campaign has work again (a retry, an edit): no expiry while it runs."""
        task = self.expiry.pop(uid, None)
        if task is not None:
            task.cancel()

    async def _expire(self, res: Resource, delay: float) -> None:
        await asyncio.sleep(delay)
        api = self.ctx.campaigns_api
        while api is not None:
            try:
                if await asyncio.to_thread(api.delete, res.namespace, res.name, str(res.uid)):
                    log.info(
                        "campaign %s/%s deleted: ttlSecondsAfterFinished %s passed",
                        res.namespace,
                        res.name,
                        res.spec.get("ttlSecondsAfterFinished"),
                    )
                return
            except Exception:
                log.exception("campaign %s/%s: TTL deletion failed", res.namespace, res.name)
                await asyncio.sleep(ERROR_BACKOFF)

    def _post_events(
        self, res: Resource, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> None:
        api = self.ctx.campaigns_api
        happened = events.transitions(before, after)
        if api is None or not happened:
            return

        async def post() -> None:
            for e in happened:
                try:
                    await asyncio.to_thread(
                        api.post_event,
                        res.namespace,
                        res.name,
                        str(res.uid),
                        e.type,
                        e.reason,
                        e.message,
                    )
                except Exception as exc:  # an Event is worth a log line, not a failed step
                    log.warning(
                        "campaign %s/%s: event %s not posted: %s",
                        res.namespace,
                        res.name,
                        e.reason,
                        exc,
                    )

        self._spawn(post(), f"events {res.namespace}/{res.name}")

    def _deleted(self, res: Resource) -> None:
        self._keep(res.uid)
        if self.latest.pop(res.uid, None) is not None:
            self.wake[res.uid].set()  # its task ends after the current step
        self._spawn(self._delete(res), f"delete {res.namespace}/{res.name}")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _run(self, uid: uuid.UUID) -> None:
        namespace = self.latest[uid].namespace
        try:
            while (res := self.latest.get(uid)) is not None:
                self.wake[uid].clear()
                delay = self.ctx.settings.status_interval
                try:
                    new = await reconcile.reconcile(self.ctx, res)
                    if new is not None and self._patch_due(uid, res, new):
                        await self._patch_status(uid, res, new)
                    metrics.RECONCILES.labels("ok").inc()
                except Exception:
                    metrics.RECONCILES.labels("error").inc()
                    log.exception("campaign %s/%s: reconciliation failed", res.namespace, res.name)
                    delay = ERROR_BACKOFF
                res = self.latest.get(uid)
                if res is None:
                    break
                if res.settled:
                    self._expire_later(res)
                    break
                if self.ctx.slots.is_waiting(namespace, uid) and delay != ERROR_BACKOFF:
                    # queued: asleep until a slot frees (or a policy changes), no polling
                    delay = self.ctx.settings.policy_recheck_seconds
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake[uid].wait(), delay)
        finally:
            self.tasks.pop(uid, None)
            self.wake.pop(uid, None)
            self.latest.pop(uid, None)
            self.patched.pop(uid, None)
            self.ctx.slots.leave(namespace, uid)
            self.ctx.slots.freed(namespace)  # finished (or deleted): its slot is free

    def _patch_due(self, uid: uuid.UUID, res: Resource, new: Mapping[str, Any]) -> bool:
        """Rate-limit patches that only move counts (``status_patch_interval``); the
        next reconciliation computes them again, so none is lost."""
        now = time.monotonic()
        last = self.patched.get(uid)
        interval = self.ctx.settings.status_patch_interval
        if last is not None and now - last < interval and not urgent(res.status, new):
            return False
        self.patched[uid] = now
        return True

    async def _patch_status(self, uid: uuid.UUID, res: Resource, new: dict[str, Any]) -> None:
        api = self.ctx.campaigns_api
        if api is None:
            return
        if not await asyncio.to_thread(api.patch_status, res.namespace, res.name, new):
            return  # gone: its DELETED event follows
        self._post_events(res, res.status, merge_patch(res.status, new))
        cur = self.latest.get(uid)
        if cur is not None:  # until the watch brings it, the status we wrote is the newest
            self.latest[uid] = replace(cur, status=merge_patch(cur.status, new))

    async def _drop_legacy(self, res: Resource) -> None:
        """An earlier release's copy of the spec in an annotation: removed once (it kept
        big lists from ``kubectl apply``); the event of the patch no longer carries it."""
        api = self.ctx.campaigns_api
        if api is None:
            return
        try:
            await asyncio.to_thread(api.drop_annotation, res.namespace, res.name, LEGACY_ANNOTATION)
            log.info("campaign %s/%s: removed %s", res.namespace, res.name, LEGACY_ANNOTATION)
        except Exception as exc:  # seen again at the next event or restart
            log.warning(
                "campaign %s/%s: %s not removed: %s",
                res.namespace,
                res.name,
                LEGACY_ANNOTATION,
                exc,
            )

    async def _stop(self, res: Resource) -> None:
        try:
            await reconcile.stop(self.ctx, res)
        except Exception:  # the reconcile step that follows cancels it anyway
            log.exception("campaign %s/%s: stopping failed", res.namespace, res.name)

    async def _delete(self, res: Resource) -> None:
        self.ctx.slots.leave(res.namespace, res.uid)
        while True:
            try:
                await reconcile.on_delete(self.ctx, res)
                self.ctx.slots.freed(res.namespace)  # its row says deleted: slot free
                return
            except Exception:
                log.exception("campaign %s/%s: deletion failed; retrying", res.namespace, res.name)
                await asyncio.sleep(ERROR_BACKOFF)

    async def sweep_orphans_forever(self) -> None:
        """Cancel campaigns deleted while no operator watched, now and then periodically."""
        while True:
            try:
                n = await reconcile.sweep_orphans(self.ctx)
                if n:
                    log.info("orphan sweep: %d campaign(s) without a resource cancelled", n)
            except Exception:
                log.exception("orphan sweep failed")
            await asyncio.sleep(self.ctx.settings.orphan_sweep_interval)

    async def close(self) -> None:
        tasks = [*self.tasks.values(), *self.background, *self.expiry.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
