"""Campaign phases, shared by the operator (which sets them) and the API (which reports them)."""

from __future__ import annotations

FINAL_PHASES = frozenset({"Completed", "CompletedWithFailures", "Cancelled", "Failed"})

REFERENCE_STATUS: dict[str, str] = {
    "Pending": "pending",
    "Scheduled": "scheduled",
    "Queued": "pending",
    "Processing": "processing",
    "Suspended": "suspended",
    "Completed": "completed",
    "CompletedWithFailures": "completed_with_failures",
    "Cancelled": "cancelled",
    "Failed": "failed",
}
"""Our phases in the reference service's vocabulary (its REST contract)."""
