"""Pure figures and tables from Campaign resources: rate, ETA, rows (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from notifq.core.phases import FINAL_PHASES


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def done(status: Mapping[str, Any]) -> int:
    """Messages that reached a final state."""
    return sum(int(status.get(k) or 0) for k in ("sent", "failed", "cancelled", "suppressed"))


def average_rate(status: Mapping[str, Any], now: datetime) -> float | None:
    """Messages finished per second since the campaign started (None before it did)."""
    start = parse_time(status.get("startTime"))
    if start is None:
        return None
    end = parse_time(status.get("completionTime")) or now
    seconds = (end - start).total_seconds()
    return done(status) / seconds if seconds > 0 else None


def sampled_rate(before: Mapping[str, Any], after: Mapping[str, Any], seconds: float) -> float:
    """Messages finished per second between two readings of one campaign's status."""
    return max(0, done(after) - done(before)) / seconds if seconds > 0 else 0.0


def eta_seconds(status: Mapping[str, Any], rate: float | None) -> float | None:
    """Seconds until every pending message is handled at ``rate`` (None if unknown)."""
    if status.get("phase") in FINAL_PHASES:
        return 0.0
    pending = int(status.get("pending") or 0)
    if pending == 0:
        return None if status.get("phase") in (None, "Pending", "Scheduled", "Queued") else 0.0
    if not rate or status.get("phase") == "Suspended":
        return None
    return pending / rate


def human_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    s = math.ceil(value)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def human_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}/s"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A kubectl-style table: upper-case header, columns padded, three spaces apart."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


TOP_HEADER = (
    "NAMESPACE",
    "NAME",
    "PHASE",
    "TOTAL",
    "SENT",
    "FAILED",
    "PENDING",
    "PROGRESS",
    "RATE",
    "ETA",
)


def top_row(res: Mapping[str, Any], rate: float | None) -> list[str]:
    meta, status = res.get("metadata") or {}, res.get("status") or {}
    return [
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        str(status.get("phase") or "Pending"),
        f"{int(status.get('total') or 0):,}",
        f"{int(status.get('sent') or 0):,}",
        f"{int(status.get('failed') or 0):,}",
        f"{int(status.get('pending') or 0):,}",
        str(status.get("progress") or "0%"),
        human_rate(rate),
        human_seconds(eta_seconds(status, rate)),
    ]


def status_lines(res: Mapping[str, Any], now: datetime | None = None) -> list[str]:
    """``kubectl notifq status``: the campaign's figures, one per line."""
    now = now or datetime.now(UTC)
    meta, status = res.get("metadata") or {}, res.get("status") or {}
    rate = average_rate(status, now)
    lines = [
        f"Campaign:   {meta.get('namespace')}/{meta.get('name')}",
        f"Phase:      {status.get('phase') or 'Pending'}",
        f"Message:    {status.get('message') or '-'}",
        f"Total:      {int(status.get('total') or 0):,}",
        f"Sent:       {int(status.get('sent') or 0):,}",
        f"Failed:     {int(status.get('failed') or 0):,}",
        f"Pending:    {int(status.get('pending') or 0):,}",
        f"Cancelled:  {int(status.get('cancelled') or 0):,}",
        f"Suppressed: {int(status.get('suppressed') or 0):,}",
        f"Bounced:    {int(status.get('bounced') or 0):,}",
        f"Complained: {int(status.get('complained') or 0):,}",
        f"Progress:   {status.get('progress') or '0%'}",
        f"Started:    {status.get('startTime') or '-'}",
        f"Finished:   {status.get('completionTime') or '-'}",
        f"Rate:       {human_rate(rate)} (average since start)",
        f"ETA:        {human_seconds(eta_seconds(status, rate))}",
    ]
    for cond in status.get("conditions") or []:
        lines.append(f"Condition:  {cond.get('type')}={cond.get('status')} ({cond.get('reason')})")
    return lines
