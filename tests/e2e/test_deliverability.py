"""Deliverability end to end, on the test bed with a moto server for SES, SNS and SQS:

- one-click unsubscribe: the List-Unsubscribe URL in a message as the SES server recorded
  it, POSTed (a GET only shows the button), suppresses that recipient in its namespace, and
  the next campaign there skips them (status ``suppressed``, nothing sent); an admin's
  manual entry does the same; the same recipients in another namespace are still sent to;
- SES feedback: bounce notifications in SES's format, published to the SNS topic SES
  would use and read from the SQS queue subscribed to it, suppress the recipients, move
  the campaign's counts, and the reputation guard suspends the campaign until a person
  resumes it; a bystander campaign in another namespace completes untouched.

moto's SES publishes its own canned feedback for the mailbox simulator's addresses
(``bounce@simulator.amazonses.com``), but with fixed recipients and message ids that no
sent message carries, so the notifications here are built from what moto recorded.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import testbed
from api_client import Api
from harness import (
    Stack,
    campaign,
    messages_by_recipient,
    new_namespace,
    plugin_as,
    start_reports_api,
    user_kubeconfig,
    wait_until,
)
from moto_ses import ses_mails, verified_ses

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

SENDER = "sender@notifq.test"
KEYS = "k2:" + "b" * 40 + ",k1:" + "a" * 40


@pytest.fixture(scope="module")
def moto(moto: testbed.Moto) -> testbed.Moto:
    """The module's moto server (conftest), with the sender verified for SES."""
    verified_ses(moto.url, SENDER)
    return moto


def recorded(moto: testbed.Moto) -> list[EmailMessage]:
    """Every raw message the SES server recorded, parsed."""
    return list(ses_mails(moto.url).values())


def test_one_click_unsubscribe_end_to_end(
    stack_factory: Callable[..., Stack],
    api_factory: Callable[..., Api],
    namespace: str,
    moto: testbed.Moto,
) -> None:
    api = api_factory(unsubscribe_keys=KEYS)
    base = str(api.client.base_url).rstrip("/")
    stack = stack_factory(
        workers=1,
        **moto.env(),
        NOTIFQ_FROM_EMAIL=SENDER,
        NOTIFQ_PUBLIC_BASE_URL=base,
        NOTIFQ_UNSUBSCRIBE_KEYS=KEYS,
    )
    tag = uuid.uuid4().hex[:6]
    ann, bob, cat = (f"{n}-{tag}@company.test" for n in ("ann", "bob", "cat"))
    people = [ann, bob, cat]
    stack.apply(campaign("first", namespace, recipients={"list": people}, subject="Hi"))
    first = stack.wait_phase(namespace, "first", {"Completed", "CompletedWithFailures"}, 90)
    assert first["status"]["phase"] == "Completed", first["status"]
    assert first["status"]["sent"] == 3

    (to_bob,) = [m for m in recorded(moto) if m["To"] == bob]
    assert to_bob["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert to_bob["X-Notifq-Message"] == f"{first['metadata']['uid']}.1"
    url = to_bob["List-Unsubscribe"].strip("<>")
    assert url.startswith(f"{base}/unsubscribe/")

    with httpx.Client(timeout=30) as web:
        page = web.get(url)  # what a link scanner does: nothing happens
        assert page.status_code == 200 and "<button" in page.text
        listed = api.client.get("/suppressions", params={"namespace": namespace})
        assert listed.status_code == 401  # the list is for admins only
        listed = api.client.get("/suppressions", params={"namespace": namespace}, headers=api.auth)
        assert listed.json()["items"] == []
        tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
        assert web.post(tampered, data={"List-Unsubscribe": "One-Click"}).status_code == 400
        done = web.post(url, data={"List-Unsubscribe": "One-Click"})  # RFC 8058, no login
        assert done.status_code == 200, done.text
    entries = api.client.get(
        "/suppressions", params={"namespace": namespace}, headers=api.auth
    ).json()["items"]
    assert [(e["recipient"], e["reason"]) for e in entries] == [(bob, "unsubscribe")]
    added = api.client.post(
        "/suppressions",
        json={"namespace": namespace, "recipients": [cat.upper()], "detail": "asked by phone"},
        headers=api.auth,
    )
    assert added.status_code == 201 and added.json() == {"added": 1}

    # the next campaign in the namespace skips both; the same list elsewhere is sent to
    other_ns = new_namespace(stack.control_plane)
    stack.apply(campaign("second", namespace, recipients={"list": people}, subject="Again"))
    stack.apply(campaign("bystander", other_ns, recipients={"list": people}, subject="Hi"))
    second = stack.wait_phase(namespace, "second", {"Completed", "CompletedWithFailures"}, 90)
    bystander = stack.wait_phase(other_ns, "bystander", {"Completed", "CompletedWithFailures"})
    print("second:", second["status"]["message"], "| bystander:", bystander["status"]["message"])
    assert second["status"]["phase"] == "Completed"
    assert (second["status"]["sent"], second["status"]["suppressed"]) == (1, 2)
    assert second["status"]["progress"] == "100%"
    assert messages_by_recipient(stack, second["metadata"]["uid"], "status", "last_error") == {
        ann: ("sent", None),
        bob: ("suppressed", "suppressed: unsubscribe"),
        cat: ("suppressed", "suppressed: manual: asked by phone"),
    }
    assert (bystander["status"]["sent"], bystander["status"]["suppressed"]) == (3, 0)
    sent_to = [m["To"] for m in recorded(moto)]
    assert (sent_to.count(ann), sent_to.count(bob), sent_to.count(cat)) == (3, 2, 2)
    detail = api.detail(second["metadata"]["uid"])
    assert detail["progress"]["suppressed"] == 2 and detail["progress"]["sent"] == 1

    gone = api.client.delete(f"/suppressions/{namespace}/{cat}", headers=api.auth)
    assert gone.status_code == 204
    again = api.client.delete(f"/suppressions/{namespace}/{cat}", headers=api.auth)
    assert again.status_code == 404


def bounce(message: EmailMessage, provider_id: str) -> str:
    """An SES bounce notification for one recorded message (SES copies its headers)."""
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": message["To"],
                        "action": "failed",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
                "timestamp": "2026-11-30T23:00:00.000Z",
                "feedbackId": f"fb-{uuid.uuid4()}",
                "reportingMTA": "dsn; a1-2.smtp-out.amazonses.com",
            },
            "mail": {
                "timestamp": "2026-11-30T22:59:59.000Z",
                "source": SENDER,
                "messageId": provider_id,
                "destination": [message["To"]],
                "headersTruncated": False,
                "headers": [{"name": k, "value": v} for k, v in message.items()],
            },
        }
    )


def test_bounces_suppress_and_the_reputation_guard_suspends(
    stack_factory: Callable[..., Stack], namespace: str, moto: testbed.Moto
) -> None:
    sns, sqs = moto.client("sns"), moto.client("sqs")
    topic = sns.create_topic(Name=f"ses-feedback-{uuid.uuid4().hex[:6]}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"ses-feedback-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    stack = stack_factory(
        workers=1,
        **moto.env(),
        NOTIFQ_FROM_EMAIL=SENDER,
        NOTIFQ_SES_EVENTS_QUEUE_URL=queue,
        NOTIFQ_SES_EVENTS_WAIT_SECONDS="1",
        NOTIFQ_GUARD_MIN_SENT="4",
    )
    tag = uuid.uuid4().hex[:6]
    people = [f"p{i}-{tag}@company.test" for i in range(40)]
    other_ns = new_namespace(stack.control_plane)
    stack.apply(
        campaign("risky", namespace, recipients={"list": people}, subject="Hi", rateLimit=2)
    )
    stack.apply(campaign("bystander", other_ns, recipients={"list": people[:10]}, subject="Hi"))
    risky = stack.wait_phase(namespace, "risky", {"Processing"}, 60)
    uid = risky["metadata"]["uid"]
    wait_until(lambda: stack.counts(uid).get("sent", 0) >= 4, 60, "4 of the risky ones sent")
    with stack.db() as conn:
        sent = conn.execute(
            "SELECT recipient, provider_message_id FROM message WHERE campaign_id = %s "
            "AND status = 'sent' ORDER BY seq LIMIT 2",
            (uid,),
        ).fetchall()
    by_id = ses_mails(moto.url)  # the bystander mails the same people: by SES message id
    for recipient, provider_id in sent:
        assert by_id[provider_id]["To"] == recipient
        sns.publish(TopicArn=topic, Message=bounce(by_id[provider_id], provider_id))

    stack.wait_phase(namespace, "risky", {"Suspended"}, 60)
    # the guard may act on the first bounce already; both are counted soon after
    wait_until(lambda: stack.get(namespace, "risky")["status"].get("bounced") == 2, 30, "2 bounces")
    held = stack.get(namespace, "risky")
    st = held["status"]
    print("risky:", st["message"], "| sent", st["sent"], "pending", st["pending"])
    assert held["spec"]["suspend"] is True
    assert st["bounced"] == 2 and st["complained"] == 0
    assert "hard-bounce rate" in st["reputationGuard"]["reason"]
    assert st["message"].startswith("suspended by the reputation guard: hard-bounce rate")
    assert st["pending"] > 0  # stopped before the end
    guard = {c["type"]: c for c in st["conditions"]}["ReputationGuard"]
    assert (guard["status"], guard["reason"]) == ("True", "RateOverLimit")
    wait_until(
        lambda: any(r == "ReputationGuard" for r, _ in stack.events(namespace, "risky")),
        30,
        "the Event",
    )
    with stack.db() as conn:
        entries = conn.execute(
            "SELECT recipient, reason FROM suppression WHERE namespace = %s ORDER BY 1",
            (namespace,),
        ).fetchall()
        assert entries == sorted((r, "bounce") for r, _ in sent)
        assert conn.execute(
            "SELECT count(*) FROM delivery_event WHERE campaign_id = %s", (uid,)
        ).fetchone() == (2,)
    frozen = stack.counts(uid)

    bystander = stack.wait_phase(other_ns, "bystander", {"Completed", "CompletedWithFailures"})
    assert bystander["status"]["phase"] == "Completed"
    assert (bystander["status"]["sent"], bystander["status"]["bounced"]) == (10, 0)
    assert "reputationGuard" not in bystander["status"]

    # a person resumes it: the guard, having acted, does not stop it again
    stack.control_plane.kubectl(
        "patch", "campaign", "risky", "-n", namespace, "--type=merge",
        "-p", '{"spec": {"suspend": false}}',
    )  # fmt: skip
    done = stack.wait_phase(namespace, "risky", {"Completed", "CompletedWithFailures"}, 120)
    st = done["status"]
    print("risky after resume:", st["message"], "| frozen at", frozen)
    assert st["phase"] == "Completed" and st["sent"] == 40 and st["bounced"] == 2
    guard = {c["type"]: c for c in st["conditions"]}["ReputationGuard"]
    assert (guard["status"], guard["reason"]) == ("False", "ResumedByUser")


def test_suppressions_with_kubectl_and_the_users_own_rights(
    stack_factory: Callable[..., Stack], namespace: str, tmp_path: Path
) -> None:
    """``kubectl notifq suppress | suppressions | unsuppress`` through the aggregated API
    with the kubeconfig's identity: RBAC on ``suppressions.reports.notifq.dev`` decides;
    what a namespace's editor suppresses is skipped there and sent elsewhere."""
    stack = stack_factory(workers=1, NOTIFQ_MOCK_FAILURE_RATE="0")
    cp = stack.control_plane
    reports_port = start_reports_api(stack)
    other = new_namespace(cp)
    rules = [{"apiGroups": ["reports.notifq.dev"], "resources": ["suppressions"],
              "verbs": ["list", "create", "delete"]}]  # fmt: skip
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "suppressor", "namespace": namespace}, "rules": rules}  # fmt: skip
    cp.kubectl("apply", "-f", "-", input=json.dumps(role))
    editor = user_kubeconfig(stack, namespace, "editor", tmp_path)
    outsider = user_kubeconfig(stack, namespace, "outsider", tmp_path)
    cp.kubectl("create", "rolebinding", "editor", "-n", namespace, "--role=suppressor",
               f"--serviceaccount={namespace}:editor")  # fmt: skip

    def as_user(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return plugin_as(kubeconfig, tmp_path, *args)

    people = ["ann@example.com", "bob@example.com", "cat@example.com"]
    with cp.aggregated_api("reports.notifq.dev", "v1alpha1", reports_port):
        added = as_user(editor, "suppress", "ANN@example.com", "bob@example.com",
                        "--detail", "asked us")  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert "2 recipient(s) suppressed" in added.stdout
        listed = as_user(editor, "suppressions")
        assert listed.returncode == 0, listed.stderr
        assert "ann@example.com" in listed.stdout and "manual" in listed.stdout
        assert "asked us" in listed.stdout
        refused = as_user(outsider, "suppressions")
        assert refused.returncode == 1 and "forbidden" in refused.stderr.lower()
        refused = as_user(outsider, "suppress", "cat@example.com")
        assert refused.returncode == 1 and "forbidden" in refused.stderr.lower()
        elsewhere = as_user(editor, "suppress", "cat@example.com", "-n", other)
        assert elsewhere.returncode == 1 and "forbidden" in elsewhere.stderr.lower()

        stack.apply(campaign("next", namespace, recipients={"list": people}))
        stack.apply(campaign("bystander", other, recipients={"list": people}))
        mine = stack.wait_phase(namespace, "next", {"Completed", "CompletedWithFailures"})
        theirs = stack.wait_phase(other, "bystander", {"Completed", "CompletedWithFailures"})
        assert (mine["status"]["sent"], mine["status"]["suppressed"]) == (1, 2)
        assert (theirs["status"]["sent"], theirs["status"]["suppressed"]) == (3, 0)

        removed = as_user(editor, "unsuppress", "ann@example.com")
        assert removed.returncode == 0, removed.stderr
        again = as_user(editor, "unsuppress", "ann@example.com")
        assert again.returncode == 1 and "not found" in again.stderr
        left = as_user(editor, "suppressions").stdout
        assert "ann@example.com" not in left and "bob@example.com" in left
