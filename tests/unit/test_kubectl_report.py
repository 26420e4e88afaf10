"""The kubectl plugin's pure figures: rate, ETA, tables and status lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifq.kubectl import report
from notifq.kubectl.cli import parser

NOW = datetime(2026, 11, 30, 12, 0, 10, tzinfo=UTC)


def status(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "phase": "Processing",
        "total": 1000,
        "sent": 300,
        "failed": 100,
        "cancelled": 0,
        "pending": 600,
        "progress": "40%",
        "startTime": "2026-11-30T12:00:00Z",
    }
    base.update(kw)
    return base


def test_average_rate_and_eta() -> None:
    s = status()
    rate = report.average_rate(s, NOW)
    assert rate == pytest.approx(40.0)  # 400 finished in 10 s
    assert report.eta_seconds(s, rate) == pytest.approx(15.0)  # 600 pending at 40/s
    assert report.human_seconds(15.0) == "15s"
    assert report.human_seconds(3725) == "1h02m"
    assert report.human_rate(rate) == "40.0/s"


def test_finished_campaign_uses_its_completion_time() -> None:
    s = status(
        phase="Completed", sent=1000, failed=0, pending=0, completionTime="2026-11-30T12:00:04Z"
    )
    assert report.average_rate(s, NOW) == pytest.approx(250.0)
    assert report.eta_seconds(s, 250.0) == 0.0


def test_unknown_eta() -> None:
    assert report.eta_seconds(status(phase="Suspended"), 40.0) is None
    assert report.eta_seconds(status(), 0.0) is None
    assert report.eta_seconds({"phase": "Pending"}, None) is None
    assert report.average_rate({"phase": "Pending"}, NOW) is None
    assert report.human_seconds(None) == "-" and report.human_rate(None) == "-"


def test_sampled_rate_never_negative() -> None:
    assert report.sampled_rate(status(sent=300), status(sent=500), 2.0) == pytest.approx(100.0)
    # a retry moves failed messages back to pending: done goes down, the rate stays >= 0
    assert report.sampled_rate(status(), status(failed=0, pending=700), 2.0) == 0.0


def test_top_table() -> None:
    res = {"metadata": {"namespace": "team-a", "name": "welcome"}, "status": status()}
    text = report.table(report.TOP_HEADER, [report.top_row(res, 40.0)])
    header, row = text.splitlines()
    assert header.split() == list(report.TOP_HEADER)
    assert row.split() == [
        "team-a",
        "welcome",
        "Processing",
        "1,000",
        "300",
        "100",
        "600",
        "40%",
        "40.0/s",
        "15s",
    ]


def test_status_lines() -> None:
    res = {
        "metadata": {"namespace": "ns", "name": "c"},
        "status": status(conditions=[{"type": "Ready", "status": "False", "reason": "Sending"}]),
    }
    lines = report.status_lines(res, NOW)
    assert "Campaign:   ns/c" in lines
    assert "ETA:        15s" in lines
    assert "Condition:  Ready=False (Sending)" in lines


@pytest.mark.parametrize(
    "command", ["status", "top", "retry", "suspend", "resume", "cancel", "failures"]
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: kubectl notifq " + command in capsys.readouterr().out
