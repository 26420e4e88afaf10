"""Conditions by the conventions kubectl, Flux and Argo CD read (pure, no I/O).

kstatus (what Flux, Argo CD and kpt compute health from):
- ``Reconciling`` True while the campaign is on its way (pending, scheduled, sending);
- ``Stalled`` True when it cannot get on without a person (an invalid spec);
- ``Ready`` True once the desired state is reached: every recipient final, or the
  cancel the spec asked for done.

Job-like, for ``kubectl wait``:
- ``Complete`` True only when every recipient reached a final state and the campaign
  was neither cancelled nor failed (``CompletedWithFailures`` counts: every message had
  its fate, some failed);
- ``Failed`` True for a failed spec or a cancelled campaign;
- ``Suspended`` True while suspended.

Every condition carries ``observedGeneration``; ``lastTransitionTime`` changes only
when its status flips.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

COMPLETE_PHASES = frozenset({"Completed", "CompletedWithFailures"})
RECONCILING_PHASES = frozenset({"Pending", "Scheduled", "Queued", "Processing"})

CONDITION_TYPES = ("Ready", "Reconciling", "Stalled", "Complete", "Failed", "Suspended")


def _truth(phase: str) -> dict[str, bool]:
    return {
        "Ready": phase in COMPLETE_PHASES or phase == "Cancelled",
        "Reconciling": phase in RECONCILING_PHASES,
        "Stalled": phase == "Failed",
        "Complete": phase in COMPLETE_PHASES,
        "Failed": phase in {"Failed", "Cancelled"},
        "Suspended": phase == "Suspended",
    }


def _reason(ctype: str, phase: str, value: bool) -> str:
    if ctype == "Failed" and value:
        return "Cancelled" if phase == "Cancelled" else "InvalidSpec"
    if ctype == "Stalled" and value:
        return "InvalidSpec"
    return phase


def conditions(
    old: Sequence[Mapping[str, Any]] | None,
    phase: str,
    message: str,
    generation: int,
    now: Callable[[], str],
) -> list[dict[str, Any]]:
    """The kstatus and Job-like conditions for ``phase`` (see the module docstring)."""
    previous = {str(c.get("type")): c for c in old or []}
    out = []
    for ctype, value in _truth(phase).items():
        status = "True" if value else "False"
        prev = previous.get(ctype)
        keep = prev is not None and prev.get("status") == status
        out.append(
            {
                "type": ctype,
                "status": status,
                "reason": _reason(ctype, phase, value),
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": (prev or {}).get("lastTransitionTime") if keep else now(),
            }
        )
    return out
