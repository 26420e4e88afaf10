"""Pure parts of reconciliation: the row state a spec asks for, when a campaign needs
no more work, and the status the supervisor believes after its own merge patch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from notifq.operator.reconcile import Resource, desired_state
from notifq.operator.supervisor import merge_patch

NOW = datetime(2026, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "state"),
    [
        ({}, "active"),
        ({"suspend": True}, "suspended"),
        ({"cancel": True, "suspend": True}, "cancelled"),
        ({"scheduleAt": "2026-12-01T00:00:00Z"}, "suspended"),
        ({"scheduleAt": "2026-11-29T00:00:00Z"}, "active"),
    ],
)
def test_desired_state(spec: dict[str, Any], state: str) -> None:
    assert desired_state(spec, NOW) == state


def _res(
    status: dict[str, Any], generation: int = 2, annotations: dict[str, str] | None = None
) -> Resource:
    return Resource(uuid.uuid4(), "ns", "c", generation, {}, status, annotations or {})


def test_settled_until_something_new_is_asked() -> None:
    done = {"phase": "Completed", "observedGeneration": 2}
    assert _res(done).settled
    assert not _res(done, generation=3).settled  # a spec edit
    assert not _res({**done, "phase": "Processing"}).settled
    asked = {"notifq.dev/retry-failed": "t1"}
    assert not _res(done, annotations=asked).settled
    assert _res({**done, "retry": {"token": "t1"}}, annotations=asked).settled  # already handled


def test_merge_patch_of_the_status() -> None:
    old = {"phase": "Completed", "completionTime": "x", "sent": 1}
    assert merge_patch(old, {"phase": "Processing", "completionTime": None, "sent": 2}) == {
        "phase": "Processing",
        "sent": 2,
    }
