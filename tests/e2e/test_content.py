"""Per-recipient fields and HTML bodies, end to end: a CSV ConfigMap with a header row,
a CSV object in S3 and inline records feed their fields into the messages SES received
(moto server, real boto3); a template naming a field the list lacks fails at validation
with the field's name (status, condition, Event); HTML with text and HTML alone arrive at
a real SMTP server (Mailpit) as multipart/alternative with both parts, the text part
made from the HTML when only HTML is given, and field values escaped in the HTML part
only. Each next to a bystander campaign in another namespace."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
import testbed
from bystander import start_bystander
from harness import Stack, campaign, messages_by_recipient, notifq_policy
from mailpit import Mailpit
from moto_ses import aws_env, parts, ses_mails, verified_ses

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

SENDER = "sender@notifq.test"
EVIL = "<script>alert(1)</script>"
CSV = (
    "email,name,plan\n"
    'ann@company.test,Ann,"Gold, yearly"\n'
    "\n"
    f"bob@company.test,{EVIL},Free\n"
    "ANN@company.test,Duplicate,Free\n"
)


def ses_bodies(url: str) -> dict[str, dict[str, str]]:
    """What the SES server recorded, by message id: subject, text and html parts."""
    return {mid: parts(mail) for mid, mail in ses_mails(url).items()}


def sent_rows(stack: Stack, uid: str) -> dict[str, tuple[Any, ...]]:
    """recipient -> (status, provider message id, stored fields)."""
    return messages_by_recipient(stack, uid, "status", "provider_message_id", "data")


def test_csv_and_record_fields_reach_ses_and_a_missing_field_fails_validation(
    stack_factory: Callable[..., Stack],
    namespace: str,
    moto: testbed.Moto,
    request: pytest.FixtureRequest,
) -> None:
    verified_ses(moto.url, SENDER)
    stack = stack_factory(workers=1, NOTIFQ_MOCK_FAILURE_RATE="0", **aws_env(moto.url, SENDER))
    by = start_bystander(stack)
    # lists only from a labelled ConfigMap and a bucket a NotifqPolicy allows (fair use)
    policy = contextlib.ExitStack()
    policy.enter_context(
        notifq_policy(stack, f"lists-{namespace}", namespace, s3=[{"bucket": "lists"}])
    )
    request.addfinalizer(policy.close)
    stack.control_plane.kubectl(
        "create", "configmap", "people", "-n", namespace, f"--from-literal=recipients={CSV}"
    )
    stack.control_plane.kubectl(
        "label", "configmap", "people", "-n", namespace, "notifq.dev/recipients=true"
    )
    csv_ref = {"configMapRef": {"name": "people", "format": "csv"}}
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="lists")
    s3.put_object(Bucket="lists", Key="people.csv", Body=b"to,first\r\nemil@company.test,Emil\r\n")
    stack.apply(
        campaign(
            "from-s3",
            namespace,
            provider="ses",
            recipients={"s3": {"bucket": "lists", "key": "people.csv", "format": "csv"}},
            subject="S3 says hi to {{ first }}",
        )
    )
    stack.apply(
        campaign(
            "letters",
            namespace,
            provider="ses",
            recipients=csv_ref,
            subject="Hi {{ name }}",
            body="Dear {{ name }} ({{ email }}), your plan: {{ plan }}. #{{ index }}",
        )
    )
    records = [
        {"to": "cat@company.test", "name": EVIL, "city": "Oslo"},
        {"to": "dan@company.test", "name": "Dan & Co", "city": ""},
    ]
    stack.apply(
        campaign(
            "records",
            namespace,
            provider="ses",
            recipients={"records": records},
            subject="For {{ name|upper }}",
            html="<p>Dear <b>{{ name }}</b> of {{ city or 'nowhere' }}</p>",
        )
    )
    # a typo in a field name, and a field one record does not have: refused before storing
    stack.apply(campaign("typo", namespace, recipients=csv_ref, body="Dear {{ nmae }}"))
    gap = [{"to": "a@example.com", "name": "A"}, {"to": "b@example.com"}]
    stack.apply(campaign("gap", namespace, recipients={"records": gap}, body="{{ name }}"))

    cr = stack.wait_phase(namespace, "letters", {"Completed", "CompletedWithFailures"}, 90)
    assert cr["status"]["phase"] == "Completed", cr["status"]
    assert cr["status"]["total"] == 2  # blank line dropped, duplicate address removed
    recorded = ses_bodies(moto.url)
    rows = sent_rows(stack, cr["metadata"]["uid"])
    assert set(rows) == {"ann@company.test", "bob@company.test"}
    ann, bob = (
        recorded[str(rows["ann@company.test"][1])],
        recorded[str(rows["bob@company.test"][1])],
    )
    assert ann["subject"] == "Hi Ann"
    assert "html" not in ann  # text only
    assert ann["text"] == "Dear Ann (ann@company.test), your plan: Gold, yearly. #0"
    assert bob["subject"] == f"Hi {EVIL}"  # text is not escaped
    assert bob["text"] == f"Dear {EVIL} (bob@company.test), your plan: Free. #1"
    assert rows["ann@company.test"][2] == {
        "email": "ann@company.test",
        "name": "Ann",
        "plan": "Gold, yearly",
    }

    cr = stack.wait_phase(namespace, "records", {"Completed", "CompletedWithFailures"}, 90)
    assert cr["status"]["phase"] == "Completed", cr["status"]
    rows = sent_rows(stack, cr["metadata"]["uid"])
    recorded = ses_bodies(moto.url)
    cat, dan = (
        recorded[str(rows["cat@company.test"][1])],
        recorded[str(rows["dan@company.test"][1])],
    )
    assert cat["subject"] == f"For {EVIL.upper()}"
    assert cat["html"] == "<p>Dear <b>&lt;script&gt;alert(1)&lt;/script&gt;</b> of Oslo</p>"
    assert dan["html"] == "<p>Dear <b>Dan &amp; Co</b> of nowhere</p>"  # empty is a value

    cr = stack.wait_phase(namespace, "from-s3", {"Completed", "CompletedWithFailures"}, 90)
    assert cr["status"]["phase"] == "Completed", cr["status"]
    ((_, (status, message_id, data)),) = sent_rows(stack, cr["metadata"]["uid"]).items()
    assert status == "sent"
    assert data == {"to": "emil@company.test", "first": "Emil"}
    assert ses_bodies(moto.url)[str(message_id)]["subject"] == "S3 says hi to Emil"

    for name, text in {
        "typo": "'nmae' is undefined: the template uses field 'nmae', which the recipient "
        "list does not have (variables: recipient, index, campaign; fields: email, name, plan)",
        "gap": "spec.recipients.records[1] (b@example.com) has no field 'name'",
    }.items():
        cr = stack.wait_phase(namespace, name, {"Failed"}, 60)
        assert text in cr["status"]["message"], cr["status"]
        accepted = next(c for c in cr["status"]["conditions"] if c["type"] == "Accepted")
        assert accepted["reason"] == "InvalidSpec" and text in accepted["message"]
        assert cr["status"].get("total", 0) == 0
        with stack.db() as conn:
            stored = conn.execute(
                "SELECT count(*) FROM campaign WHERE id = %s", (cr["metadata"]["uid"],)
            ).fetchone()
        assert stored == (0,)  # nothing stored, nothing sent
    assert any(
        reason == "InvalidSpec" and "'nmae'" in message
        for reason, message in stack.events(namespace, "typo")
    )
    by.assert_completed()


def test_html_and_text_arrive_as_multipart_alternative(
    stack_factory: Callable[..., Stack], namespace: str, mailpit: Mailpit
) -> None:
    stack = stack_factory(
        workers=1,
        NOTIFQ_MOCK_FAILURE_RATE="0",
        NOTIFQ_SMTP_HOST="localhost",
        NOTIFQ_SMTP_PORT=str(mailpit.smtp_port),
        NOTIFQ_SMTP_SECURITY="none",
        NOTIFQ_SMTP_FROM=SENDER,
    )
    by = start_bystander(stack)
    people = [
        {"email": "eve@company.test", "name": EVIL},
        {"email": "fay@company.test", "name": "Fay Ünal"},
    ]
    html = (
        "<html><head><style>p {color: red}</style></head><body><h1>Hi {{ name }}</h1>"
        '<p>Read <a href="https://news.test/{{ index }}">the news</a>.</p>'
        "<script>track()</script></body></html>"
    )
    stack.apply(
        campaign(
            "both",
            namespace,
            provider="smtp",
            recipients={"records": people},
            subject="Both for {{ name }}",
            text="Hi {{ name }}, read https://news.test/{{ index }}",
            html=html,
        )
    )
    stack.apply(
        campaign(
            "html-only",
            namespace,
            provider="smtp",
            recipients={"list": ["gus@company.test"]},
            subject="Only HTML",
            html=html.replace("{{ name }}", "{{ recipient }}"),
        )
    )
    for name in ("both", "html-only"):
        cr = stack.wait_phase(namespace, name, {"Completed", "CompletedWithFailures"}, 90)
        assert cr["status"]["phase"] == "Completed", cr["status"]
    got = {m["To"][0]["Address"]: m["ID"] for m in mailpit.messages()}
    assert set(got) == {"eve@company.test", "fay@company.test", "gus@company.test"}

    def parts(address: str) -> tuple[dict[str, Any], str]:
        full = mailpit.message(got[address])
        content_type = mailpit.headers(got[address])["Content-Type"][0]
        return full, content_type

    eve, kind = parts("eve@company.test")
    assert kind.startswith("multipart/alternative")
    assert eve["Subject"] == f"Both for {EVIL}"
    assert eve["Text"].strip() == f"Hi {EVIL}, read https://news.test/0"  # not escaped
    assert "<h1>Hi &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in eve["HTML"]
    assert EVIL not in eve["HTML"]
    fay, _ = parts("fay@company.test")
    assert "<h1>Hi Fay Ünal</h1>" in fay["HTML"] and fay["Text"].strip().startswith("Hi Fay Ünal")

    gus, kind = parts("gus@company.test")
    assert kind.startswith("multipart/alternative")
    assert "<h1>Hi gus@company.test</h1>" in gus["HTML"]
    # made from the HTML: no style, no script, the link's target kept
    assert (
        gus["Text"].replace("\r\n", "\n").strip()
        == "Hi gus@company.test\n\nRead the news (https://news.test/0)."
    )
    by.assert_completed()
