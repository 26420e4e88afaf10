"""The API's detail of a campaign: built from the operator's copy of the status in the
campaign row, it is the answer the resource itself gives (no I/O here)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from notifq.api import views
from notifq.api.store import DetailRow
from notifq.core.resource import DISPLAY_NAME_ANNOTATION

CREATED = datetime(2026, 11, 30, 22, 0, 1, tzinfo=UTC)
UPDATED = datetime(2026, 11, 30, 22, 5, 7, tzinfo=UTC)
QUOTA = {"provider": "mock", "providerRate": 80.0, "share": 3.8, "waiting": True, "reason": "x"}


def _pair(display: str | None, quota: dict[str, Any] | None) -> tuple[Any, DetailRow]:
    uid = str(uuid.uuid4())
    meta: dict[str, Any] = {
        "uid": uid,
        "name": "spring-abcde",
        "namespace": "team-a",
        "creationTimestamp": "2026-11-30T22:00:01Z",
        "managedFields": [{"time": "2026-11-30T22:05:07Z"}],
    }
    if display is not None:
        meta["annotations"] = {DISPLAY_NAME_ANNOTATION: display}
    status: dict[str, Any] = {
        "phase": "Processing",
        "total": 1000,
        "sent": 400,
        "failed": 7,
        "message": "407 of 1000 delivered or failed, 593 pending",
    }
    if quota is not None:
        status["quota"] = quota
    spec = {"recipients": {"generate": {"count": 1000}}}
    res = {"metadata": meta, "spec": spec, "status": status}
    row = DetailRow(
        name="spring-abcde",
        display_name=display,
        created=CREATED,
        updated=UPDATED,
        phase="Processing",
        total=1000,
        sent=400,
        failed=7,
        message=status["message"],
        quota=quota,
        progress={
            "pending": 590,
            "queued": 3,
            "sent": 400,
            "failed": 7,
            "cancelled": 0,
            "suppressed": 0,
        },
    )
    return res, row


@pytest.mark.parametrize(("display", "quota"), [("Spring sale", QUOTA), (None, None)])
def test_detail_from_the_row_is_the_detail_from_the_resource(
    display: str | None, quota: dict[str, Any] | None
) -> None:
    res, row = _pair(display, quota)
    status = res["status"]
    from_resource = views.detail(
        views.public(res), dict(row.progress), status["message"], status.get("quota")
    )
    from_row = views.detail_from_row(res["metadata"]["uid"], "team-a", row)
    assert from_row == from_resource
    assert from_row.name == (display or "spring-abcde")
    assert (from_row.quota is None) == (quota is None)
    assert from_row.model_dump_json() == from_resource.model_dump_json()


def test_no_counters_yet_means_everything_is_pending() -> None:
    _, row = _pair("x", None)
    empty = DetailRow(**{**row.__dict__, "progress": dict.fromkeys(row.progress, 0)})
    progress = views.detail_from_row("id", "team-a", empty).progress
    assert progress.pending == 1000 and progress.sent == 0


def test_updated_is_never_before_created() -> None:
    _, row = _pair("x", None)
    early = DetailRow(**{**row.__dict__, "updated": datetime(2020, 1, 1, tzinfo=UTC)})
    assert views.detail_from_row("id", "team-a", early).updatedAt == CREATED
