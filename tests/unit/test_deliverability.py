"""Unsubscribe tokens (sign, verify, rotate, tamper), the List-Unsubscribe headers in
both mail providers' messages, SES feedback parsing, and the reputation guard's verdict."""

from __future__ import annotations

import email
import json

import pytest

from notifq.core.settings import OperatorSettings, WorkerSettings
from notifq.core.unsubscribe import InvalidKeys, InvalidToken, Keys, list_unsubscribe_headers
from notifq.operator import feedback, guard
from notifq.worker.headers import MailHeaders
from notifq.worker.providers.base import Outbound
from notifq.worker.providers.ses import raw_message
from notifq.worker.providers.smtp import SmtpProvider

OLD = "old1:" + "o" * 40
NEW = "new2:" + "n" * 40


def test_tokens_verify_with_any_key_and_sign_with_the_first() -> None:
    old = Keys.parse(OLD)
    token = old.sign("team-a", "Someone@Example.com")
    assert token.startswith("old1.")
    rotated = Keys.parse(f"{NEW},{OLD}")
    assert rotated.verify(token) == ("team-a", "someone@example.com")
    fresh = rotated.sign("team-a", "someone@example.com")
    assert fresh.startswith("new2.") and rotated.verify(fresh) == ("team-a", "someone@example.com")
    with pytest.raises(InvalidToken):
        Keys.parse(NEW).verify(token)  # the old key was dropped: its links end
    kid, payload, mac = token.split(".")
    other = Keys.parse(OLD).sign("team-b", "someone@example.com").split(".")[1]
    bads = (f"{kid}.{other}.{mac}", f"{kid}.{payload}.{mac[:-2]}AA", "x", f"{kid}..{mac}",
            f"{kid}.{payload}.{mac[:-1]}é")  # fmt: skip
    for bad in bads:
        with pytest.raises(InvalidToken):
            rotated.verify(bad)


@pytest.mark.parametrize("spec", ["k1", "k1:short", "bad id:" + "x" * 40, f"{OLD},{OLD}"])
def test_bad_key_lists_are_refused(spec: str) -> None:
    with pytest.raises(InvalidKeys):
        Keys.parse(spec)
    with pytest.raises(ValueError, match="unsubscribe key"):
        WorkerSettings(unsubscribe_keys=spec)  # at start, not at the first send


def _headers() -> list[Outbound]:
    settings = WorkerSettings(
        public_base_url="https://notifq.example.com/",
        unsubscribe_keys=OLD,
        unsubscribe_mailto="unsubscribe@example.com",
    )
    m = Outbound(7, "Ann@Company.test", "Hi", "Body", "c0ffee")
    assert MailHeaders(settings).add("mock", "team-a", [m]) == [m]  # not mail: no cost
    return MailHeaders(settings).add("ses", "team-a", [m])


def test_mail_carries_one_click_headers() -> None:
    (m,) = _headers()
    for data in (raw_message("sender@example.com", m), SmtpProvider(WorkerSettings()).build(m)[1]):
        msg = email.message_from_bytes(data)
        assert msg["X-Notifq-Message"] == "c0ffee.7"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url, mailto = (p.strip(" <>") for p in msg["List-Unsubscribe"].split(","))
        assert url.startswith("https://notifq.example.com/unsubscribe/")
        assert mailto == "mailto:unsubscribe@example.com?subject=unsubscribe"
        token = url.rsplit("/", 1)[1]
        assert Keys.parse(OLD).verify(token) == ("team-a", "ann@company.test")
        assert str(msg.get_payload()).strip() == "Body"


def test_headers_need_a_key_and_a_url() -> None:
    assert list_unsubscribe_headers(Keys.parse(OLD), "https://x", "n", "a@b")[1][0] == (
        "List-Unsubscribe-Post"
    )
    m = Outbound(1, "a@b.test", "s", "b", "cid")
    (out,) = MailHeaders(WorkerSettings(public_base_url="https://x")).add("smtp", "n", [m])
    assert out.headers == (("X-Notifq-Message", "cid.1"),)  # no keys: no unsubscribe link


def test_feedback_parse_reads_tags_and_ignores_deliveries() -> None:
    event = {
        "eventType": "Complaint",
        "mail": {
            "messageId": "m1",
            "tags": {"notifq-campaign": ["0b5e3f4a-1111-4222-8333-444455556666"], "seq": ["3"]},
        },
        "complaint": {"feedbackId": "f", "complainedRecipients": [{"emailAddress": "A@B.c"}]},
    }
    (fb,) = feedback.parse(json.dumps(event))
    assert (fb.kind, fb.recipient, str(fb.campaign_id), fb.seq) == (
        "complaint",
        "a@b.c",
        "0b5e3f4a-1111-4222-8333-444455556666",
        3,
    )
    assert feedback.parse(json.dumps({"notificationType": "Delivery", "mail": {}})) == []
    with pytest.raises(ValueError):
        feedback.parse("not json")


def test_guard_verdict() -> None:
    s = OperatorSettings(guard_min_sent=100, guard_bounce_rate=0.05, guard_complaint_rate=0.001)
    assert guard.verdict(99, 50, 50, s) is None  # too few sent to judge
    assert guard.verdict(100, 5, 0, s) is None  # 5 % is not over 5 %
    assert "hard-bounce rate 6.00%" in (guard.verdict(100, 6, 0, s) or "")
    assert "complaint rate 1.00%" in (guard.verdict(100, 0, 1, s) or "")
    assert guard.verdict(10_000, 0, 10, s) is None  # 0.1 % is not over 0.1 %
