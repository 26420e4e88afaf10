"""Headers a sender adds to bulk email, apart from its body (:mod:`.render` builds that).

- ``X-Notifq-Message: <campaign uid>.<seq>``: SES returns the original headers in its
  bounce and complaint notifications, so feedback is attributed to its campaign and
  message without a lookup by provider id.
- ``List-Unsubscribe`` / ``List-Unsubscribe-Post`` (RFC 8058 one-click) with a token
  signed for the recipient and the campaign's namespace, when ``public_base_url`` and
  ``unsubscribe_keys`` are set.
"""

from __future__ import annotations

from dataclasses import replace

from notifq.core.settings import WorkerSettings
from notifq.core.unsubscribe import Keys, list_unsubscribe_headers
from notifq.worker.providers.base import Outbound

MESSAGE_HEADER = "X-Notifq-Message"

MAIL_PROVIDERS = frozenset({"ses", "smtp"})
"""Providers that send the headers (others never see them: no cost per message)."""


class MailHeaders:
    def __init__(self, settings: WorkerSettings) -> None:
        self.keys = Keys.parse(settings.unsubscribe_keys)
        self.base_url = settings.public_base_url if self.keys else None
        self.mailto = settings.unsubscribe_mailto

    def add(self, provider: str, namespace: str, messages: list[Outbound]) -> list[Outbound]:
        """``messages`` with their headers, for a mail provider; unchanged for others."""
        if provider not in MAIL_PROVIDERS:
            return messages
        out = []
        for m in messages:
            headers = [(MESSAGE_HEADER, f"{m.campaign}.{m.seq}")]
            if self.base_url:
                headers += list_unsubscribe_headers(
                    self.keys, self.base_url, namespace, m.recipient, self.mailto
                )
            out.append(replace(m, headers=(*m.headers, *headers)))
        return out
