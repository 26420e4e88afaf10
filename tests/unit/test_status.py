"""Phase, progress and condition rules of the operator's status (pure functions)."""

from __future__ import annotations

import pytest

from notifq.operator import status as st


@pytest.mark.parametrize(
    ("spec", "counts", "phase"),
    [
        ({}, {"pending": 10}, "Processing"),
        ({}, {"pending": 0, "sent": 10}, "Completed"),
        ({}, {"pending": 0, "sent": 9, "failed": 1}, "CompletedWithFailures"),
        ({"suspend": True}, {"pending": 5, "sent": 5}, "Suspended"),
        ({"suspend": True}, {"pending": 0, "sent": 10}, "Completed"),
        ({"cancel": True}, {"pending": 3, "sent": 7}, "Processing"),
        ({"cancel": True}, {"pending": 0, "sent": 7, "cancelled": 3}, "Cancelled"),
        ({}, {"pending": 0, "cancelled": 10}, "Cancelled"),
    ],
)
def test_phase_for(spec: dict[str, object], counts: dict[str, int], phase: str) -> None:
    assert st.phase_for(spec, counts, sum(counts.values())) == phase


def test_progress_counts_every_final_state() -> None:
    assert st.progress({"sent": 1, "failed": 1, "cancelled": 1, "pending": 7}, 10) == "30%"
    assert st.progress({}, 0) == "0%"
    assert st.progress({"sent": 999}, 1000) == "99%"


def test_condition_keeps_transition_time_until_status_flips() -> None:
    first = st.condition(None, "Complete", False, "Processing", "", 1)
    same = st.condition(
        [{**first, "lastTransitionTime": "2020-01-01T00:00:00Z"}],
        "Complete",
        False,
        "Processing",
        "x",
        2,
    )
    assert same["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert same["observedGeneration"] == 2
    flipped = st.condition([same], "Complete", True, "Completed", "", 2)
    assert flipped["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_build_reports_counts_and_completion() -> None:
    new = st.build(
        old={},
        spec={},
        generation=3,
        phase="Completed",
        counts={"sent": 4, "pending": 0},
        total=4,
        message="done",
    )
    assert new["total"] == 4 and new["sent"] == 4 and new["progress"] == "100%"
    assert new["observedGeneration"] == 3 and "completionTime" in new
    assert {c["type"]: c["status"] for c in new["conditions"]} == {
        "Accepted": "True",
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "Complete": "True",
        "Failed": "False",
        "Suspended": "False",
    }
    assert not st.changed(new, dict(new))
    assert st.changed(new, {**new, "sent": 5})


def test_failed_phase_is_not_accepted() -> None:
    new = st.build(
        old={},
        spec={},
        generation=1,
        phase="Failed",
        counts=None,
        total=0,
        message="ConfigMap x not found",
    )
    accepted = next(c for c in new["conditions"] if c["type"] == "Accepted")
    assert accepted["status"] == "False" and accepted["reason"] == "InvalidSpec"
    assert accepted["message"] == "ConfigMap x not found"


def test_a_later_schedule_holds_a_stored_campaign() -> None:
    later = {"scheduleAt": "2999-01-01T00:00:00Z"}
    assert st.phase_for(later, {"pending": 5, "sent": 5}, 10) == "Scheduled"
    assert st.phase_for(later, {"pending": 0, "sent": 10}, 10) == "Completed"
    assert st.phase_for({"scheduleAt": "2000-01-01T00:00:00Z"}, {"pending": 5}, 5) == "Processing"
    held = st.build(
        old={},
        spec=later,
        generation=2,
        phase="Scheduled",
        counts={"pending": 5},
        total=5,
        message="held",
    )
    accepted = next(c for c in held["conditions"] if c["type"] == "Accepted")
    assert accepted["status"] == "True"  # stored, only held
