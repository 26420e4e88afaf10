"""Which Kubernetes Events a campaign's status change deserves (pure, no I/O).

The supervisor compares the status it patched last with the one it is about to
patch and posts what this returns, so ``kubectl describe campaign`` tells the
campaign's story: accepted and stored, scheduled, started, suspended, resumed,
retry requested, waiting for quota, a provider failed over, cancelled, completed with
counts, failed with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

POLICY_PREFIX = "refused by policy: "
"""Start of the status message of a campaign a NotifqPolicy refused."""


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


SENDING = frozenset({"Processing", "Completed", "CompletedWithFailures"})
"""Phases a campaign reaches once it sends (a small one may finish before it is seen sending)."""


def _n(status: Mapping[str, Any], key: str) -> int:
    return int(status.get(key) or 0)


def transitions(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Event]:
    """Events for going from status ``old`` to status ``new`` (empty when nothing happened)."""
    before, after = old.get("phase"), new.get("phase")
    events: list[Event] = []
    retry_old = (old.get("retry") or {}).get("token")
    retry_new = new.get("retry") or {}
    if retry_new.get("token") and retry_new.get("token") != retry_old:
        events.append(
            Event(
                "Normal",
                "RetryRequested",
                f"{_n(retry_new, 'retried')} failed message(s) re-queued",
            )
        )
    if _n(new, "total") and not _n(old, "total"):
        events.append(Event("Normal", "Stored", f"{_n(new, 'total')} messages stored"))
    quota_old = bool((old.get("quota") or {}).get("waiting"))
    quota = new.get("quota") or {}
    if quota.get("waiting") and not quota_old:
        events.append(
            Event(
                "Normal",
                "WaitingForQuota",
                f"{quota.get('provider')} at {quota.get('providerRate')}/s, this campaign's "
                f"share {quota.get('share')}/s (limited by {quota.get('reason') or 'quota'})",
            )
        )
    guard = new.get("reputationGuard") or {}
    if guard.get("trippedAt") and not (old.get("reputationGuard") or {}).get("trippedAt"):
        events.append(Event("Warning", "ReputationGuard", f"suspended: {guard.get('reason')}"))
    seen = old.get("failover") or {}
    for pair, n in sorted((new.get("failover") or {}).items()):
        if pair not in seen:
            primary, _, secondary = pair.partition(">")
            events.append(
                Event(
                    "Warning",
                    "ProviderFailover",
                    f"{primary} down: {n} message(s) sent through {secondary} so far",
                )
            )
    if before == after:
        return events
    message = str(new.get("message") or "")
    if before in (None, "Pending", "Scheduled", "Queued") and after in SENDING:
        events.append(Event("Normal", "Started", f"sending {_n(new, 'total')} messages"))
    if after == "Scheduled":
        events.append(Event("Normal", "Scheduled", message))
    elif after == "Queued":
        events.append(Event("Normal", "Queued", message))
    elif after == "Processing" and before == "Suspended":
        events.append(Event("Normal", "Resumed", message))
    elif after == "Suspended":
        events.append(Event("Normal", "Suspended", message))
    elif after == "Cancelled":
        events.append(Event("Normal", "Cancelled", message))
    elif after == "Completed":
        events.append(Event("Normal", "Completed", f"{_n(new, 'sent')} sent of {_n(new, 'total')}"))
    elif after == "CompletedWithFailures":
        events.append(
            Event(
                "Warning",
                "CompletedWithFailures",
                f"{_n(new, 'sent')} sent, {_n(new, 'failed')} failed of {_n(new, 'total')}",
            )
        )
    elif after == "Failed":
        policy = message.startswith(POLICY_PREFIX)
        events.append(Event("Warning", "PolicyViolation" if policy else "InvalidSpec", message))
    return events
