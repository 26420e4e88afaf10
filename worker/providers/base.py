"""The provider interface: send a batch, get one classified outcome per message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Result = Literal["sent", "transient", "permanent", "throttled", "exhausted"]
"""``throttled``: the provider's rate was exceeded; ``exhausted``: the provider takes no
sends for now (SES: its daily quota is used up; SMTP: the relay refuses our credentials or
its TLS certificate does not verify), so it is paused for every worker with the reason.
Neither spends an attempt of the message: the send rate goes down instead, or the
messages wait for the pause to end."""


@dataclass(frozen=True, slots=True)
class Outbound:
    """One rendered message."""

    seq: int
    recipient: str
    subject: str
    body: str
    campaign: str = ""
    """The campaign's id (SMTP makes the Message-ID from it and ``seq``)."""
    html: str | None = None
    """The HTML part (``body`` is then its text alternative), or None: text only."""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra mail headers (:mod:`notifq.worker.headers`): ``List-Unsubscribe`` and the
    message's ``X-Notifq-Message`` id; email providers add them, others ignore them."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message: sent, failed transiently (retry) or permanently, or
    refused for the provider's quota (throttled, exhausted)."""

    seq: int
    result: Result
    error: str | None = None
    provider_id: str | None = None
    down: bool = False
    """The provider itself failed, not this message (``transient`` only): it could not be
    reached, the connection broke, or it answered 5xx / ``ServiceUnavailable``. What the
    failover breaker counts (:mod:`notifq.worker.breaker`); throttling never is."""


def header_lines(m: Outbound) -> str:
    """``m.headers`` as header lines (values are ASCII without line breaks: URLs, ids)."""
    lines = []
    for name, value in m.headers:
        if not value.isascii() or "\r" in value or "\n" in value or len(value) > 900:
            raise ValueError(f"header {name} not sendable as is")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


class Provider(Protocol):
    name: str

    async def send_many(self, channel: str, messages: list[Outbound]) -> list[Outcome]:
        """Deliver ``messages`` concurrently; never raises for a per-message failure."""
        ...

    async def close(self) -> None: ...


class QuotaInfo(Protocol):
    """A provider that can tell its own quota (SES's ``GetSendQuota``)."""

    async def send_quota(self) -> tuple[float, float, float]:
        """(max sends per second, max sends per 24 hours, sent in the last 24 hours)."""
        ...
