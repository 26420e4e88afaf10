"""The reputation guard: a campaign whose hard-bounce or complaint rate passes its limit
is suspended, once, and stays so until a person resumes it.

Rates are SES's feedback for the campaign (``campaign.bounced`` / ``complained``, from
:mod:`.feedback`) over its sent messages, judged once it sent ``guard_min_sent``. The
trip is written to the spec first (``spec.suspend: true``, so the resource says what
holds it and a failure here is simply tried again), then recorded on the campaign row
(``guard_tripped_at``; the check also runs while the campaign is suspended and the trip
not recorded, so a failure between the two writes is mended by the next reconcile), and
the campaign is suspended as any suspend is (row state, jobs withdrawn; the workers stop
within one slice). A person resumes with
``spec.suspend: false`` and the guard, having acted, does not overrule them.
"""

from __future__ import annotations

import asyncio
import logging

from notifq.core.settings import OperatorSettings
from notifq.operator.kube import CampaignApi

log = logging.getLogger(__name__)


def verdict(sent: int, bounced: int, complained: int, settings: OperatorSettings) -> str | None:
    """Why the campaign must stop, or None while its rates are within the limits."""
    if sent < settings.guard_min_sent or sent <= 0:
        return None
    bounce_rate, complaint_rate = bounced / sent, complained / sent
    if bounce_rate > settings.guard_bounce_rate:
        return (
            f"hard-bounce rate {bounce_rate:.2%} ({bounced} of {sent} sent) is over the "
            f"limit of {settings.guard_bounce_rate:.2%}"
        )
    if complaint_rate > settings.guard_complaint_rate:
        return (
            f"complaint rate {complaint_rate:.2%} ({complained} of {sent} sent) is over the "
            f"limit of {settings.guard_complaint_rate:.2%}"
        )
    return None


async def suspend_spec(api: CampaignApi, namespace: str, name: str) -> None:
    """Write ``spec.suspend: true`` (blocking client, off the event loop)."""
    await asyncio.to_thread(api.suspend, namespace, name)
