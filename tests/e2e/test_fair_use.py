"""Fair use per namespace and recipients checked for their channel, on the real control
plane with the real operator and workers: a NotifqPolicy's concurrency limit queues a
campaign until a slot frees (in creation order; while it waits the operator makes no slot
check at all, counted by its admissions metric), its size limit refuses a campaign with
the limit named in the status and a PolicyViolation Event, its provider share caps a
namespace's sends (counted in 1-second windows of the mock provider's log); SMS numbers
outside E.164 and push targets outside the allowed ARN prefixes are never sent; a
ConfigMap list needs the notifq.dev/recipients label and an object-storage list a policy
that allows its location. Each next to a bystander in another namespace."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import testbed
from harness import (
    Stack,
    campaign,
    deliveries,
    events_of,
    messages_by_recipient,
    new_namespace,
    notifq_policy,
)

from notifq.core import recipients as rcpt
from notifq.core.resource import RECIPIENTS_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def scrape(port: int) -> dict[str, float]:
    """The operator's Prometheus metrics (name with labels -> value)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def admissions(port: int) -> dict[str, float]:
    m = scrape(port)
    return {
        o: m.get(f'notifq_operator_admissions_total{{outcome="{o}"}}', 0.0)
        for o in ("admitted", "queued")
    }


def queued_gauge(port: int) -> float:
    return scrape(port)["notifq_operator_queued_campaigns"]


def db_times(stack: Stack, namespace: str, name: str) -> tuple[Any, Any]:
    """(started_at, finished_at) of a stored campaign, from Postgres (microseconds)."""
    with stack.db() as conn:
        row = conn.execute(
            "SELECT started_at, finished_at FROM campaign WHERE namespace = %s AND name = %s",
            (namespace, name),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_concurrency_limit_queues_in_order_and_size_limit_refuses(
    stack_factory: Callable[..., Stack], namespace: str
) -> None:
    port = testbed.free_port()
    stack = stack_factory(
        workers=0,
        NOTIFQ_MOCK_FAILURE_RATE="0",
        NOTIFQ_METRICS_PORT=str(port),  # the operator's
        NOTIFQ_POLICY_RECHECK_SECONDS="600",  # only a freed slot or a policy change wakes
    )
    stack.start_worker(NOTIFQ_METRICS_PORT="0")
    other = new_namespace(stack.control_plane)
    gen = {"generate": {"count": 50}}
    with notifq_policy(stack, f"p-{namespace}", namespace, maxActiveCampaigns=1, maxRecipients=100):
        stack.apply(campaign("first", namespace, recipients=gen, suspend=True))
        stack.wait_phase(namespace, "first", {"Suspended"}, 60)  # holds the one slot
        stack.apply(campaign("second", namespace, recipients=gen))
        stack.wait_phase(namespace, "second", {"Queued"}, 60)
        stack.apply(campaign("third", namespace, recipients=gen))
        too_big = {"generate": {"count": 101}}
        stack.apply(campaign("too-big", namespace, recipients=too_big))
        # this operator has no NOTIFQ_PUSH_ARN_PREFIXES: push is off, refused outright
        target = {"list": ["arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/1"]}
        stack.apply(campaign("push-off", namespace, channel="push", recipients=target))

        # too large: refused, the limit, the field and the policy named, and an Event
        cr = stack.wait_phase(namespace, "too-big", {"Failed"}, 60)
        message = cr["status"]["message"]
        assert message.startswith("refused by policy: 101 recipients"), message
        assert f"NotifqPolicy p-{namespace}" in message and "maxRecipients" in message
        assert "the 100 per campaign" in message
        reasons = {e["reason"]: e for e in events_of(stack, namespace, "too-big")}
        assert reasons["PolicyViolation"]["type"] == "Warning"
        assert reasons["PolicyViolation"]["message"] == message

        cr = stack.wait_phase(namespace, "push-off", {"Failed"}, 60)
        assert cr["status"]["message"].startswith("push is off"), cr["status"]

        # over the concurrency limit: queued, saying why, with an Event
        for name, ahead in (("second", ""), ("third", "; 1 queued ahead of it")):
            cr = stack.wait_phase(namespace, name, {"Queued"}, 60)
            assert cr["status"]["message"] == (
                f"1 of 1 concurrent campaigns in namespace {namespace} active "
                f"(NotifqPolicy p-{namespace}, maxActiveCampaigns){ahead}; "
                "starts when a slot frees"
            ), cr["status"]
            assert cr["status"]["total"] == 0 and "startTime" not in cr["status"]
        assert "Queued" in {e["reason"] for e in events_of(stack, namespace, "second")}

        # the bystander in another namespace is not held by this namespace's limit; while
        # it runs and finishes, the queued ones sleep: no slot check at all (no polling)
        checks = admissions(port)
        assert checks["queued"] >= 2 and queued_gauge(port) == 2, checks
        stack.apply(campaign("bystander", other, recipients={"generate": {"count": 3000}}))
        cr = stack.wait_phase(other, "bystander", {"Completed"}, 120)
        assert cr["status"]["sent"] == 3000
        assert stack.get(namespace, "second")["status"]["phase"] == "Queued"
        assert admissions(port) == checks

        # the slot frees: the queued ones start by themselves, one at a time, in order
        stack.control_plane.kubectl(
            "patch", "campaign", "first", "-n", namespace, "--type=merge",
            "-p", '{"spec":{"suspend":false}}',
        )  # fmt: skip
        for name in ("first", "second", "third"):
            cr = stack.wait_phase(namespace, name, {"Completed"}, 120)
            assert cr["status"]["sent"] == 50
        first, second, third = (db_times(stack, namespace, n) for n in ("first", "second", "third"))
        assert first[1] < second[0] and second[1] < third[0], (first, second, third)
        assert "Started" in {e["reason"] for e in events_of(stack, namespace, "third")}


def max_in_a_second(times: list[float]) -> int:
    """The most stamps in any half-open 1-second window."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_a_namespace_share_caps_its_sends_while_a_bystander_completes(
    stack_factory: Callable[..., Stack], namespace: str
) -> None:
    rate = 100  # the mock provider's quota, shared by every worker
    stack = stack_factory(
        workers=2,
        NOTIFQ_RATE_LIMIT_MOCK=str(rate),
        NOTIFQ_MOCK_FAILURE_RATE="0",
        NOTIFQ_MOCK_LATENCY_MS="5",
    )
    other = new_namespace(stack.control_plane)
    big, by = f"big-{namespace}.example.com", f"by-{namespace}.example.com"
    with notifq_policy(stack, f"p-{namespace}", namespace, providerSharePercent={"mock": 30}):
        for name, ns, domain in (("big", namespace, big), ("bystander", other, by)):
            gen = {"generate": {"count": 450, "domain": domain}}
            stack.apply(campaign(name, ns, provider="mock", recipients=gen))
        cr = stack.wait_phase(other, "bystander", {"Completed"}, 180)
        assert cr["status"]["sent"] == 450
        cr = stack.wait_phase(namespace, "big", {"Completed"}, 180)
        assert cr["status"]["sent"] == 450
    a, b = deliveries(stack, big), deliveries(stack, by)
    assert len(a) == 450 and len(b) == 450
    peak_a, peak_b, peak_all = max_in_a_second(a), max_in_a_second(b), max_in_a_second(a + b)
    print(f"\nsends in the busiest second: namespace with 30 %: {peak_a}, bystander: {peak_b}, "
          f"both: {peak_all} (provider quota {rate}/s)")  # fmt: skip
    # the share is a strict cap: no 1-second window of the provider's log holds more of
    # the namespace's sends than 30 % of the quota, with or without the bystander running
    assert peak_a <= rate * 30 // 100
    assert peak_all <= rate


def message_rows(stack: Stack, uid: str) -> dict[str, tuple[Any, ...]]:
    """recipient -> (status, attempts, last error)."""
    return messages_by_recipient(stack, uid, "status", "attempts", "last_error")


def test_recipients_are_checked_for_their_channel_and_source(
    stack_factory: Callable[..., Stack], namespace: str, moto: testbed.Moto
) -> None:
    sns = moto.client("sns")
    app = sns.create_platform_application(
        Name="notifq", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )["PlatformApplicationArn"]
    device = sns.create_platform_endpoint(PlatformApplicationArn=app, Token="device-1")
    allowed = app.replace(":app/", ":endpoint/") + "/"
    bucket = f"lists-{uuid.uuid4().hex[:6]}"
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    for key in ("allowed/list.txt", "private/list.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"s1@example.com\ns2@example.com\n")
    big = "".join(f"b{i}@example.com\n" for i in range(4)).encode()
    s3.put_object(Bucket=bucket, Key="allowed/big.txt", Body=big)
    stack = stack_factory(
        workers=1,
        NOTIFQ_MOCK_FAILURE_RATE="0",
        NOTIFQ_PUSH_ARN_PREFIXES=json.dumps([allowed]),
        NOTIFQ_FROM_EMAIL="sender@notifq.test",
        **moto.env(),
    )
    other = new_namespace(stack.control_plane)
    foreign = "arn:aws:sns:us-east-1:999999999999:endpoint/GCM/other/0000"
    stack.apply(campaign("bystander", other, recipients={"generate": {"count": 500}}))
    lists = {
        "push": [device["EndpointArn"], foreign],
        "sms": ["+14155550100", "14155550101", "+1-415-555-0102"],
    }
    for channel, people in lists.items():
        stack.apply(campaign(channel, namespace, channel=channel, recipients={"list": people}))
    cm = {"recipients": "c1@example.com\nc2@example.com\n"}
    for name, labels in (("unlabelled", {}), ("labelled", {RECIPIENTS_LABEL: "true"})):
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": cm,
        }
        stack.control_plane.kubectl("apply", "-f", "-", input=json.dumps(body))
        stack.apply(campaign(f"cm-{name}", namespace, recipients={"configMapRef": {"name": name}}))
    allow = [{"bucket": bucket, "prefix": "allowed/"}]
    with notifq_policy(stack, f"p-{namespace}", namespace, s3=allow, maxRecipients=3):
        for name, key in (("allowed", "allowed/list.txt"), ("private", "private/list.txt"),
                          ("big", "allowed/big.txt")):  # fmt: skip
            ref = {"bucket": bucket, "key": key}
            stack.apply(campaign(f"s3-{name}", namespace, recipients={"s3": ref}))

        cr = stack.wait_phase(namespace, "cm-unlabelled", {"Failed"}, 60)
        assert cr["status"]["message"] == (
            f"ConfigMap {namespace}/unlabelled is not labelled {RECIPIENTS_LABEL}=true: "
            "label it to allow notifq to mail its recipients"
        )
        cr = stack.wait_phase(namespace, "cm-labelled", {"Completed"}, 60)
        assert cr["status"]["sent"] == 2
        cr = stack.wait_phase(namespace, "s3-private", {"Failed"}, 60)
        assert (
            f"s3://{bucket}/private/list.txt is not allowed for namespace"
            in (cr["status"]["message"])
        )
        cr = stack.wait_phase(namespace, "s3-allowed", {"Completed"}, 60)
        assert cr["status"]["sent"] == 2
        # a streamed list is counted as it is read: refused at the first batch past the limit
        cr = stack.wait_phase(namespace, "s3-big", {"Failed"}, 60)
        assert cr["status"]["message"] == (
            "refused by policy: the list holds more recipients than the 3 per campaign "
            f"NotifqPolicy p-{namespace} allows in namespace {namespace} (maxRecipients)"
        )
        with stack.db() as conn:  # nothing of it is left to send
            n = conn.execute(
                "SELECT count(*) FROM message m JOIN campaign c ON c.id = m.campaign_id "
                "WHERE c.namespace = %s AND c.name = 's3-big'",
                (namespace,),
            ).fetchone()
        assert n == (0,)

    cr = stack.wait_phase(namespace, "push", {"CompletedWithFailures"}, 60)
    rows = message_rows(stack, cr["metadata"]["uid"])
    assert rows[device["EndpointArn"]][0] == "sent"
    assert rows[foreign] == ("failed", 0, rcpt.FOREIGN_TARGET)  # never tried
    reasons = {r["reason"]: r["count"] for r in cr["status"]["failureReasons"]}
    assert reasons == {rcpt.FOREIGN_TARGET: 1}
    cr = stack.wait_phase(namespace, "sms", {"CompletedWithFailures"}, 60)
    rows = message_rows(stack, cr["metadata"]["uid"])
    assert rows["+14155550100"][0] == "sent"
    assert rows["14155550101"] == ("failed", 0, rcpt.INVALID_ADDRESS)
    assert rows["+1-415-555-0102"] == ("failed", 0, rcpt.INVALID_ADDRESS)
    cr = stack.wait_phase(other, "bystander", {"Completed"}, 120)
    assert cr["status"]["sent"] == 500
