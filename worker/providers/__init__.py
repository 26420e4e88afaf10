"""Delivery providers behind one small interface (see :mod:`.base`)."""

from __future__ import annotations

from notifq.core.settings import WorkerSettings
from notifq.worker.providers.base import Outbound, Outcome, Provider
from notifq.worker.providers.mock import MockProvider

__all__ = ["Outbound", "Outcome", "Provider", "build_providers"]


def build_providers(settings: WorkerSettings) -> dict[str, Provider]:
    """Every provider this worker can deliver through, by name.

    SES and SNS clients and SMTP connections are created lazily on first use, so a
    worker that only ever sends to the mock needs no AWS credentials and no relay.
    """
    from notifq.worker.providers.ses import SesProvider
    from notifq.worker.providers.smtp import SmtpProvider
    from notifq.worker.providers.sns import SnsProvider

    return {
        "mock": MockProvider(settings),
        "ses": SesProvider(settings),
        "sns": SnsProvider(settings),
        "smtp": SmtpProvider(settings),
    }
