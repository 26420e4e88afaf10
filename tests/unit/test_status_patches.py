"""Status patches of busy campaigns are rate-limited, but never what changes meaning:
a patch that only moves counts waits for ``status_patch_interval``; a new phase,
generation, retry or completion goes out at once."""

from __future__ import annotations

from notifq.operator.supervisor import urgent

OLD = {
    "phase": "Processing",
    "sent": 10,
    "progress": "10%",
    "message": "10 of 100 delivered or failed, 90 pending",
    "observedGeneration": 1,
}


def test_counts_alone_can_wait() -> None:
    new = {**OLD, "sent": 20, "progress": "20%", "message": "20 of 100 delivered or failed"}
    assert not urgent(OLD, new)


def test_meaningful_changes_go_at_once() -> None:
    assert urgent(OLD, {**OLD, "phase": "Completed", "completionTime": "2026-11-30T20:00:00Z"})
    assert urgent(OLD, {**OLD, "observedGeneration": 2})
    assert urgent(OLD, {**OLD, "retry": {"token": "t", "retried": 3}})
    assert urgent({**OLD, "completionTime": "x"}, {**OLD, "completionTime": None})
