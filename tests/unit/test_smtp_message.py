"""The SMTP provider's pure parts: the message it writes (parsed back with the standard
library), the classification of relay answers, and ``auto`` routing to the relay."""

from __future__ import annotations

import email
import email.policy
import smtplib
import ssl

import pytest

from notifq.core import recipients
from notifq.core.settings import WorkerSettings
from notifq.worker.providers.base import Outbound
from notifq.worker.providers.smtp import SmtpProvider, connect_failure, reply_result


@pytest.fixture
def provider() -> SmtpProvider:
    return SmtpProvider(WorkerSettings(smtp_from="news@sender.test"))


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Hello", "Plain body\n.a line starting with a dot\nend"),
        ("Grüße, 東京", "Ünïcode body\r\nsecond line"),
        ("x" * 1200, "long subject"),
        ("s", "y" * 1500),
    ],
)
def test_message_parses_back(provider: SmtpProvider, subject: str, body: str) -> None:
    msg_id, raw = provider.build(Outbound(7, "to@rcpt.test", subject, body, "cid"))
    assert msg_id == "<cid.7@sender.test>"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["From"] == "news@sender.test"
    assert parsed["To"] == "to@rcpt.test"
    assert parsed["Message-ID"] == msg_id
    assert str(parsed["Subject"]) == subject
    assert parsed.get_content().replace("\r\n", "\n") == body.replace("\r\n", "\n")


def test_line_break_in_subject_is_refused(provider: SmtpProvider) -> None:
    with pytest.raises(ValueError, match="line break"):
        provider.build(Outbound(1, "to@rcpt.test", "a\r\nBcc: x@evil.test", "b"))


def test_reply_classes() -> None:
    assert reply_result(421) == reply_result(451) == "transient"
    assert reply_result(550) == reply_result(554) == "permanent"
    auth = connect_failure(smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"))
    assert auth.result == "exhausted" and "535 5.7.8 bad credentials" in auth.reason
    assert connect_failure(ssl.SSLCertVerificationError("bad cert")).result == "exhausted"
    assert connect_failure(ConnectionRefusedError("refused")).result == "transient"
    assert connect_failure(smtplib.SMTPConnectError(421, b"busy")).result == "transient"


def test_auto_routing_to_the_relay_by_domain() -> None:
    domains = frozenset({"company.test"})
    assert recipients.route("email", "auto", "a@company.test", domains) == "smtp"
    assert recipients.route("email", "auto", "a@other.test", domains) == "ses"
    assert recipients.route("email", "auto", "a@example.com", frozenset({"*"})) == "mock"
    assert recipients.route("email", "auto", "a@other.test", frozenset({"*"})) == "smtp"
    assert recipients.route("sms", "auto", "+14155550100", frozenset({"*"})) == "sns"
    assert recipients.route("email", "smtp", "a@example.com") == "smtp"
