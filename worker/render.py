"""Rendering of a write batch: every row becomes an outbound message or a failed write.

Plain-substitution templates render here, in-process (their cost is linear in
their bounded output); others go to the process's :class:`RenderPool`, whose
subprocesses hold the CPU, memory and output budget. Any error, of any type,
fails its one message with the reason; nothing here raises for a template's fault.
"""

from __future__ import annotations

import logging

from notifq.core.errors import TemplateError
from notifq.core.renderpool import RenderPool
from notifq.core.templating import check_output
from notifq.worker import metrics
from notifq.worker.providers import Outbound
from notifq.worker.store import CampaignInfo, PendingRow, Write

log = logging.getLogger(__name__)

MAX_ERROR = 1000
"""Longest ``last_error`` stored."""


async def render_rows(
    pool: RenderPool, camp: CampaignInfo, rows: list[PendingRow]
) -> tuple[list[Outbound], list[Write]]:
    """The batch's sendable messages, and a failed write for each that did not render."""
    outbound: list[Outbound] = []
    failures: list[Write] = []
    tmpl = camp.template
    cid = str(camp.id)
    if tmpl.fast:
        render = tmpl.render
        for r in rows:
            try:
                subject, body, html_body = render(r.recipient, r.seq, r.data)
            except Exception as exc:  # a missing field; a substitution cannot fail otherwise
                failures.append(Write(r.seq, "failed", _reason(exc), "none", None))
                continue
            # fields are not checked where they enter (a CSV cell may hold a line break)
            if r.data is not None and (why := check_output(subject, body, html_body)):
                failures.append(Write(r.seq, "failed", why, "none", None))
                continue
            outbound.append(Outbound(r.seq, r.recipient, subject, body, cid, html_body))
    else:
        results = await pool.render(tmpl, [(r.seq, r.recipient, r.data) for r in rows])
        for r, (seq, subject, body, html_body, error) in zip(rows, results, strict=True):
            if error is None:
                outbound.append(Outbound(seq, r.recipient, subject, body, cid, html_body))
            else:
                failures.append(Write(seq, "failed", error[:MAX_ERROR], "none", None))
    if failures:
        metrics.RENDER_FAILURES.inc(len(failures))
        log.info(
            "campaign %s: %d message(s) failed to render, e.g. #%d: %s",
            camp.name,
            len(failures),
            failures[0].seq,
            failures[0].error,
        )
    return outbound, failures


def _reason(exc: Exception) -> str:
    if isinstance(exc, TemplateError):
        return str(exc)[:MAX_ERROR]
    return f"template failed to render: {type(exc).__name__}: {exc}"[:MAX_ERROR]
