"""Fair use at admission: a namespace's largest campaign and its concurrent campaigns.

A campaign holds one of its namespace's ``maxActiveCampaigns`` slots from the moment it
is admitted (then stored) until it is final or deleted; a suspended one keeps its slot.
One over the limit waits in phase ``Queued`` with a message that says why, costs nothing
while it waits (its task sleeps until a slot frees, :mod:`supervisor`), and is let in
by creation time. A campaign larger than ``maxRecipients`` is refused (phase ``Failed``,
the limit and the policy named, a ``PolicyViolation`` Event).
"""

from __future__ import annotations

import logging
import uuid

from psycopg_pool import AsyncConnectionPool

from notifq.core.errors import InvalidCampaign
from notifq.core.policy import Limits
from notifq.operator import metrics
from notifq.operator.events import POLICY_PREFIX
from notifq.operator.policies import Slots, Waiting

__all__ = ["POLICY_PREFIX", "Admission", "PolicyViolation", "check_size"]

log = logging.getLogger(__name__)


class PolicyViolation(InvalidCampaign):
    """The campaign is valid but over a limit of its namespace's policy."""

    def __init__(self, message: str) -> None:
        super().__init__(POLICY_PREFIX + message)


def size_message(namespace: str, limits: Limits, size: int | None) -> str:
    """Why a campaign of ``size`` recipients is refused (None: a list found too long while
    it was read)."""
    what = f"{size} recipients, more" if size is not None else "the list holds more recipients"
    return (
        f"{what} than the {limits.max_recipients} per campaign "
        f"{limits.named('maxRecipients')} allows in namespace {namespace} (maxRecipients)"
    )


def check_size(namespace: str, limits: Limits, size: int | None) -> None:
    """:class:`PolicyViolation` when a list of known ``size`` is over ``maxRecipients``."""
    if size is not None and limits.max_recipients is not None and size > limits.max_recipients:
        raise PolicyViolation(size_message(namespace, limits, size))


UNFINISHED = (
    "SELECT id FROM campaign WHERE namespace = %s AND deleted_at IS NULL "
    "AND finished_at IS NULL AND materialized_at IS NOT NULL AND state <> 'cancelled'"
)
"""Campaigns holding a slot of a namespace (partial index of migration 0008)."""


class Admission:
    """Slots per namespace: takes one for a campaign, or says why it waits."""

    def __init__(self, pool: AsyncConnectionPool, slots: Slots) -> None:
        self.pool = pool
        self.slots = slots
        self.admitting: dict[str, set[uuid.UUID]] = {}
        """Admitted campaigns whose row may not exist yet, by namespace."""

    async def take(self, namespace: str, me: Waiting, limits: Limits) -> str | None:
        """Take a slot for ``me`` (None) or the message of why it waits (it is queued).
        A taken slot is held by the campaign's row once stored; call :meth:`stored`."""
        if limits.max_active is None:
            self.slots.leave(namespace, me.uid)
            return None
        async with self.slots.lock(namespace):
            async with self.pool.connection() as conn:
                cur = await conn.execute(UNFINISHED, (namespace,))
                ids = {r[0] for r in await cur.fetchall()}
            ids |= self.admitting.get(namespace, set())
            ids.discard(me.uid)
            active = len(ids)
            ahead = self.slots.ahead(namespace, me)
            if active + ahead < limits.max_active:
                metrics.ADMISSIONS.labels("admitted").inc()
                self.admitting.setdefault(namespace, set()).add(me.uid)
                was_waiting = me.uid in self.slots.waiting.get(namespace, {})
                self.slots.leave(namespace, me.uid)
                if was_waiting:
                    log.info("campaign %s/%s: slot free, starting", namespace, me.name)
                    self.slots.freed(namespace)  # the next in line may fit too
                return None
            self.slots.wait(namespace, me)
            metrics.ADMISSIONS.labels("queued").inc()
        behind = f"; {ahead} queued ahead of it" if ahead else ""
        return (
            f"{active} of {limits.max_active} concurrent campaigns in namespace {namespace} "
            f"active ({limits.named('maxActiveCampaigns')}, maxActiveCampaigns){behind}; "
            "starts when a slot frees"
        )

    def stored(self, namespace: str, uid: uuid.UUID) -> None:
        """The campaign's row exists (or it will never be stored): it counts from there."""
        held = self.admitting.get(namespace)
        if held is not None:
            held.discard(uid)
            if not held:
                self.admitting.pop(namespace, None)
