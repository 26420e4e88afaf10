"""Recipient lists: generation for load tests, normalization and validation.

Rules (documented in the README, "Recipient lists"): blank entries are dropped, surrounding
white space is stripped, duplicates are removed case-insensitively keeping the
first occurrence, and recipients that are not valid for the channel are kept as
messages that fail at once, never sent and never retried, with the reason
(``invalid address``; a push target outside the allowed SNS ARN prefixes:
``invalid recipient: push target outside the allowed ARN prefixes``), so the user can
see them. The same rule holds for every source (inline, ConfigMap, object storage):
one typo does not refuse a 50,000-line list, and a streamed list cannot be refused up
front anyway. Checked per channel: email by syntax, SMS in E.164 (``+`` and 7 to 15
digits), push as an ARN under one of ``NOTIFQ_PUSH_ARN_PREFIXES`` (none configured: push
campaigns are refused as a whole by the operator).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator

EMAIL_RE = re.compile(
    r"^[^@\s<>,;\"']+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
MAX_RECIPIENT_LENGTH = 320

INVALID_ADDRESS = "invalid address"
"""``last_error`` of a message whose recipient is not valid for the channel (never retried)."""

CONTROL_CHARACTER = "invalid recipient: control character"
"""``last_error`` of a message whose recipient holds a control character (never retried).
The API server and the REST API refuse those; a ConfigMap list can still carry one."""

FOREIGN_TARGET = "invalid recipient: push target outside the allowed ARN prefixes"
"""``last_error`` of a push message whose target ARN is under none of
``NOTIFQ_PUSH_ARN_PREFIXES`` (never retried)."""

NEVER_RETRIED = (INVALID_ADDRESS, CONTROL_CHARACTER, FOREIGN_TARGET)
"""Failures that retry-failed leaves alone."""

CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")

MOCK_DOMAINS = ("example.com", "example.org", "example.net")
"""Addresses at these reserved domains go to the mock provider under ``provider: auto``."""


def generated(count: int, domain: str) -> Iterator[str]:
    """``count`` synthetic addresses ``user<i>@<domain>`` for load tests."""
    return (f"user{i}@{domain}" for i in range(count))


RECIPIENT_SQL = "coalesce(m.recipient, 'user' || (m.seq - {first})::text || '@' || {domain})"
"""A message's address in SQL (``m`` is the ``message`` row): a generated list's rows hold
none (migration 0014), theirs is :func:`generated`'s ``user<seq - first>@<domain>``.
``{first}`` and ``{domain}`` are the campaign's ``generated_from`` and
``generated_domain``, or parameters carrying them (both NULL for every other list, whose
rows all hold theirs)."""

RECIPIENT_OF_CAMPAIGN = RECIPIENT_SQL.format(first="c.generated_from", domain="c.generated_domain")
""":data:`RECIPIENT_SQL` where the campaign is joined as ``c``."""


def normalize(entries: Iterable[str]) -> list[str]:
    """Strip, drop blanks and de-duplicate (case-insensitive), preserving order."""
    seen: set[str] = set()
    out: list[str] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        key = entry.lower()
        if key in seen:
            continue
        seen.add(key)
        out.append(entry)
    return out


def is_valid(channel: str, recipient: str) -> bool:
    """Whether ``recipient`` is a deliverable address for ``channel``."""
    if len(recipient) > MAX_RECIPIENT_LENGTH:
        return False
    if channel == "email":
        return EMAIL_RE.match(recipient) is not None
    if channel == "sms":
        return PHONE_RE.match(recipient) is not None
    return bool(recipient) and not any(c.isspace() for c in recipient)


def allowed_target(arn: str, prefixes: Collection[str]) -> bool:
    """Whether the SNS target ``arn`` lies under one of ``prefixes`` (none: nothing is)."""
    return arn.startswith("arn:") and any(arn.startswith(p) for p in prefixes if p)


def problem(channel: str, recipient: str, push_prefixes: Collection[str] = ()) -> str | None:
    """Why a message to ``recipient`` fails at once (``last_error``), or None.
    ``push_prefixes``: the SNS ARN prefixes push targets must lie under."""
    if CONTROL_RE.search(recipient) is not None:
        return CONTROL_CHARACTER
    if not is_valid(channel, recipient):
        return INVALID_ADDRESS
    if channel == "push" and not allowed_target(recipient, push_prefixes):
        return FOREIGN_TARGET
    return None


def printable(recipient: str) -> str:
    """``recipient`` with control characters written as ``\\xNN`` (Postgres text holds no NUL)."""
    return CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", recipient)


def route(channel: str, provider: str, recipient: str, smtp_domains: Collection[str] = ()) -> str:
    """Which provider delivers ``recipient``: the spec's choice, or ``auto`` routing.

    Under ``auto``, email at a mock domain goes to the mock, email at one of
    ``smtp_domains`` (``*``: any other domain) to the SMTP relay, other email to SES.
    """
    if provider != "auto":
        return provider
    if channel == "email":
        domain = recipient.rpartition("@")[2].lower()
        if domain in MOCK_DOMAINS:
            return "mock"
        if smtp_domains and ("*" in smtp_domains or domain in smtp_domains):
            return "smtp"
        return "ses"
    return "sns"
