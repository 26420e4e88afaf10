"""Pure status logic: from counts and spec to the Campaign's ``status``.

No I/O here, so the phase rules are unit-tested over plain dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from notifq.core.phases import FINAL_PHASES
from notifq.core.resource import format_time
from notifq.operator.conditions import conditions

__all__ = ["FINAL_PHASES"]


def now_iso() -> str:
    return format_time(datetime.now(UTC))


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def scheduled_later(spec: Mapping[str, Any], now: datetime) -> bool:
    """Whether ``spec.scheduleAt`` lies in the future."""
    when = parse_time(spec.get("scheduleAt"))
    return when is not None and when > now


def phase_for(
    spec: Mapping[str, Any], counts: Mapping[str, int], total: int, now: datetime | None = None
) -> str:
    """Phase of a materialized campaign."""
    pending = counts.get("pending", 0)
    if spec.get("cancel"):
        return "Cancelled" if pending == 0 else "Processing"
    if pending == 0:
        if counts.get("cancelled", 0) and not counts.get("sent", 0) and not counts.get("failed", 0):
            return "Cancelled"
        return "CompletedWithFailures" if counts.get("failed", 0) else "Completed"
    if spec.get("suspend"):
        return "Suspended"
    if scheduled_later(spec, now or datetime.now(UTC)):
        return "Scheduled"  # scheduleAt moved to the future after it started: held until then
    return "Processing"


def progress(counts: Mapping[str, int], total: int) -> str:
    if total <= 0:
        return "0%"
    done = sum(counts.get(k, 0) for k in ("sent", "failed", "cancelled", "suppressed"))
    return f"{(100 * done) // total}%"


def condition(
    old: list[Mapping[str, Any]] | None,
    ctype: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
) -> dict[str, Any]:
    """A condition, keeping ``lastTransitionTime`` unless the status flips."""
    value = "True" if status else "False"
    prev = next((c for c in (old or []) if c.get("type") == ctype), None)
    when = prev.get("lastTransitionTime") if prev and prev.get("status") == value else None
    return {
        "type": ctype,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": when or now_iso(),
    }


def build(
    *,
    old: Mapping[str, Any],
    spec: Mapping[str, Any],
    generation: int,
    phase: str,
    counts: Mapping[str, int] | None,
    total: int,
    message: str,
    start_time: str | None = None,
) -> dict[str, Any]:
    """The full status the operator wants the resource to have."""
    counts = counts or {}
    final = phase in FINAL_PHASES
    conds = old.get("conditions") or []
    # a stored campaign held by a later scheduleAt stays accepted
    accepted = phase not in {"Pending", "Failed", "Queued"} and (phase != "Scheduled" or total > 0)
    new: dict[str, Any] = {
        "phase": phase,
        "total": total,
        "pending": counts.get("pending", 0),
        "sent": counts.get("sent", 0),
        "failed": counts.get("failed", 0),
        "cancelled": counts.get("cancelled", 0),
        "suppressed": counts.get("suppressed", 0),
        "progress": progress(counts, total) if phase != "Failed" else "0%",
        "message": message,
        "observedGeneration": generation,
        "conditions": [
            condition(
                conds,
                "Accepted",
                accepted,
                "InvalidSpec" if phase == "Failed" else ("Stored" if accepted else phase),
                message
                if phase in {"Failed", "Pending", "Scheduled", "Queued"}
                else f"{total} messages stored and queued",
                generation,
            ),
            *conditions(conds, phase, message, generation, now_iso),
        ],
    }
    start = old.get("startTime") or start_time
    if start:
        new["startTime"] = start
    if final and phase != "Failed":
        new["completionTime"] = old.get("completionTime") or now_iso()
    if old.get("retry"):
        new["retry"] = old["retry"]
    return new


def changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether patching ``new`` over ``old`` changes anything."""
    return any(old.get(k) != v for k, v in new.items())


def describe(phase: str, counts: Mapping[str, int], total: int) -> str:
    """A one-line human message for the status."""
    sent, failed = counts.get("sent", 0), counts.get("failed", 0)
    pending, cancelled = counts.get("pending", 0), counts.get("cancelled", 0)
    if phase == "Processing":
        return f"{sent + failed} of {total} delivered or failed, {pending} pending"
    if phase == "Suspended":
        return f"suspended with {pending} pending"
    if phase == "Scheduled":
        return f"held until spec.scheduleAt with {pending} pending"
    if phase == "Cancelled":
        return f"cancelled: {cancelled} not sent, {sent} sent, {failed} failed"
    suppressed = counts.get("suppressed", 0)
    skipped = f", {suppressed} suppressed" if suppressed else ""
    if phase == "Completed":
        return f"{sent} sent{skipped}" if suppressed else f"all {sent} messages sent"
    if phase == "CompletedWithFailures":
        return f"{sent} sent, {failed} failed{skipped}"
    return phase
