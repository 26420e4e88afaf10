"""Real providers through real boto3 calls, against a local AWS-compatible server
(moto in server mode): SES delivery is recorded by the server, an SES rejection is
permanent and not retried, SMS goes out through SNS."""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator

import pytest
import testbed
from harness import Stack, campaign, wait_until
from moto_ses import aws_env, ses_messages, verified_ses

SENDER = "sender@notifq.test"


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    moto = testbed.Moto(tmp_path_factory.mktemp("moto")).start()
    yield moto.url
    moto.stop()


def test_ses_delivery_is_recorded_by_the_server(
    stack_factory: Callable[..., Stack], namespace: str, moto_url: str
) -> None:
    ses = verified_ses(moto_url, SENDER)
    stack = stack_factory(workers=1, **aws_env(moto_url, SENDER))
    people = [f"person{i}@company.test" for i in range(6)]
    stack.apply(
        campaign(
            "real",
            namespace,
            recipients={"list": people},
            subject="Hello {{ recipient }}",
            body="Body for {{ recipient }}",
        )
    )
    cr = stack.wait_phase(namespace, "real", {"Completed", "CompletedWithFailures"}, 60)
    assert cr["status"]["phase"] == "Completed", cr["status"]
    with stack.db() as conn:
        rows = conn.execute(
            "SELECT recipient, provider, provider_message_id FROM message "
            "WHERE campaign_id = %s AND status = 'sent'",
            (cr["metadata"]["uid"],),
        ).fetchall()
    assert {r[0] for r in rows} == set(people)
    assert {r[1] for r in rows} == {"ses"}
    recorded = {str(m["id"]): m for m in ses_messages(moto_url)}
    for recipient, _, message_id in rows:
        msg = recorded[message_id]
        assert msg["source"] == SENDER
        assert set(msg["destinations"]) == {recipient}  # moto adds the To header's again
        mail = email.message_from_string(str(msg["raw_data"]))
        assert (mail["From"], mail["To"]) == (SENDER, recipient)
        assert mail["Subject"] == f"Hello {recipient}"
        assert str(mail.get_payload()).strip() == f"Body for {recipient}"
        assert mail["X-Notifq-Message"].startswith(f"{cr['metadata']['uid']}.")
        assert mail["List-Unsubscribe"] is None  # no public URL and keys configured
    assert ses.get_send_quota()["SentLast24Hours"] >= len(people)


def test_ses_rejection_is_permanent(
    stack_factory: Callable[..., Stack], namespace: str, moto_url: str
) -> None:
    stack = stack_factory(workers=1, **aws_env(moto_url, "unverified@notifq.test"))
    stack.apply(
        campaign("rejected", namespace, recipients={"list": ["a@company.test", "b@company.test"]})
    )
    cr = stack.wait_phase(namespace, "rejected", {"CompletedWithFailures"}, 60)
    with stack.db() as conn:
        rows = conn.execute(
            "SELECT attempts, last_error FROM message WHERE campaign_id = %s",
            (cr["metadata"]["uid"],),
        ).fetchall()
    assert len(rows) == 2
    for attempts, error in rows:
        assert attempts == 1  # not retried
        assert error.startswith("MessageRejected"), error


def test_sms_goes_through_sns(
    stack_factory: Callable[..., Stack], namespace: str, moto_url: str
) -> None:
    stack = stack_factory(workers=1, **aws_env(moto_url, SENDER))
    stack.apply(
        campaign(
            "sms",
            namespace,
            channel="sms",
            recipients={"list": ["+14155550100", "+14155550101", "12345"]},
            body="Your code is {{ index }}",
        )
    )
    cr = stack.wait_phase(namespace, "sms", {"CompletedWithFailures"}, 60)
    with stack.db() as conn:
        rows = dict(
            (r[0], r[1:])
            for r in conn.execute(
                "SELECT recipient, status, provider, provider_message_id, last_error FROM message "
                "WHERE campaign_id = %s",
                (cr["metadata"]["uid"],),
            ).fetchall()
        )
    assert rows["+14155550100"][:2] == ("sent", "sns") and rows["+14155550100"][2]
    assert rows["+14155550101"][:2] == ("sent", "sns")
    assert rows["12345"] == ("failed", None, None, "invalid address")


def test_ses_daily_quota_used_up_pauses_instead_of_failing(
    stack_factory: Callable[..., Stack], namespace: str, moto_url: str
) -> None:
    # The moto server's SES account allows 200 sends per 24 h (GetSendQuota). The worker
    # reads it every second here; the rate is overridden to 20/s to keep the test short.
    stack = stack_factory(
        workers=1,
        **aws_env(moto_url, SENDER),
        NOTIFQ_RATE_LIMIT_SES="20",
        NOTIFQ_SES_QUOTA_INTERVAL="1",
    )
    people = [f"daily{i}@company.test" for i in range(400)]
    stack.apply(campaign("daily", namespace, recipients={"list": people}))

    def paused() -> bool:
        st = stack.get(namespace, "daily").get("status", {})
        return str((st.get("quota") or {}).get("reason", "")).startswith("paused: daily quota")

    wait_until(paused, 120, "SES sending to pause for its daily quota")
    cr = stack.get(namespace, "daily")
    st = cr["status"]
    assert st["phase"] == "Processing" and st["failed"] == 0 and st["pending"] > 0, st
    cond = next(c for c in st["conditions"] if c["type"] == "QuotaLimited")
    assert cond["status"] == "True" and cond["reason"] == "ProviderPaused", cond
    assert "daily quota used up" in st["message"]
    with stack.db() as conn:
        attempts = conn.execute(
            "SELECT max(attempts) FROM message WHERE campaign_id = %s AND status = 'pending'",
            (cr["metadata"]["uid"],),
        ).fetchone()
    assert attempts is not None and (attempts[0] or 0) == 0  # refused sends spent nothing
