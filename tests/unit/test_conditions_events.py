"""Campaign conditions (kstatus + Job-like) and the Events a status change posts."""

from __future__ import annotations

import pytest

from notifq.operator.conditions import conditions
from notifq.operator.events import Event, transitions


def truth(phase: str) -> dict[str, str]:
    return {c["type"]: c["status"] for c in conditions(None, phase, "m", 3, lambda: "T0")}


@pytest.mark.parametrize(
    ("phase", "true"),
    [
        ("Pending", {"Reconciling"}),
        ("Scheduled", {"Reconciling"}),
        ("Processing", {"Reconciling"}),
        ("Suspended", {"Suspended"}),
        ("Completed", {"Ready", "Complete"}),
        ("CompletedWithFailures", {"Ready", "Complete"}),
        ("Cancelled", {"Ready", "Failed"}),
        ("Failed", {"Stalled", "Failed"}),
    ],
)
def test_conditions_per_phase(phase: str, true: set[str]) -> None:
    got = truth(phase)
    assert {t for t, s in got.items() if s == "True"} == true
    assert set(got) == {"Ready", "Reconciling", "Stalled", "Complete", "Failed", "Suspended"}


def test_transition_time_moves_only_on_a_flip() -> None:
    first = conditions(None, "Processing", "m", 1, lambda: "T0")
    again = conditions(first, "Processing", "m2", 2, lambda: "T1")
    assert {c["lastTransitionTime"] for c in again} == {"T0"}
    assert {c["observedGeneration"] for c in again} == {2}
    done = {c["type"]: c for c in conditions(again, "Completed", "m", 2, lambda: "T2")}
    assert done["Complete"]["lastTransitionTime"] == "T2"  # False -> True
    assert done["Reconciling"]["lastTransitionTime"] == "T2"  # True -> False
    assert done["Stalled"]["lastTransitionTime"] == "T0"  # stayed False
    failed = {c["type"]: c for c in conditions(None, "Failed", "bad template", 1, lambda: "T")}
    assert failed["Failed"]["reason"] == "InvalidSpec"
    assert failed["Failed"]["message"] == "bad template"
    cancelled = {c["type"]: c for c in conditions(None, "Cancelled", "m", 1, lambda: "T")}
    assert cancelled["Failed"]["reason"] == "Cancelled"


def test_events_for_a_campaign_life() -> None:
    pending = {"phase": "Pending"}
    stored = {"phase": "Processing", "total": 100, "message": "0 of 100"}
    assert transitions(pending, stored) == [
        Event("Normal", "Stored", "100 messages stored"),
        Event("Normal", "Started", "sending 100 messages"),
    ]
    suspended = {**stored, "phase": "Suspended", "message": "suspended with 60 pending"}
    assert transitions(stored, suspended) == [
        Event("Normal", "Suspended", "suspended with 60 pending")
    ]
    assert [e.reason for e in transitions(suspended, stored)] == ["Resumed"]
    quick = {"phase": "Completed", "total": 5, "sent": 5}
    assert [e.reason for e in transitions(pending, quick)] == ["Stored", "Started", "Completed"]
    assert transitions(stored, stored) == []
    done = {**stored, "phase": "CompletedWithFailures", "sent": 90, "failed": 10}
    assert transitions(stored, done) == [
        Event("Warning", "CompletedWithFailures", "90 sent, 10 failed of 100")
    ]
    retried = {**stored, "retry": {"token": "t1", "retried": 10}}
    assert transitions(done, retried)[0] == Event(
        "Normal", "RetryRequested", "10 failed message(s) re-queued"
    )
    assert transitions(retried, retried) == []
    failed = {"phase": "Failed", "message": "ConfigMap x not found"}
    assert transitions(pending, failed) == [
        Event("Warning", "InvalidSpec", "ConfigMap x not found")
    ]
    quota = {"waiting": True, "provider": "ses", "providerRate": 14.0, "share": 7.0}
    waiting = {**stored, "quota": {**quota, "reason": "share"}}
    assert transitions(stored, waiting) == [
        Event(
            "Normal",
            "WaitingForQuota",
            "ses at 14.0/s, this campaign's share 7.0/s (limited by share)",
        )
    ]


def test_a_provider_failover_is_an_event_once_per_pair() -> None:
    sending = {"phase": "Processing", "total": 100}
    over = {**sending, "failover": {"ses>smtp": 4}}
    assert transitions(sending, over) == [
        Event("Warning", "ProviderFailover", "ses down: 4 message(s) sent through smtp so far")
    ]
    assert transitions(over, {**sending, "failover": {"ses>smtp": 40}}) == []
