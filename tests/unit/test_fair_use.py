"""Fair use and recipient checks without a cluster: NotifqPolicy selection and precedence,
per-channel recipient rules (E.164, SNS ARN prefixes), and the status and Events of a
queued or policy-refused campaign."""

from __future__ import annotations

from typing import Any

import pytest

from notifq.core import policy
from notifq.core import recipients as rcpt
from notifq.operator import admission, events
from notifq.operator import status as st
from notifq.operator.policies import Slots, Waiting


def pol(name: str, priority: int = 0, selector: Any = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "spec": {"priority": priority, **spec}}
    if selector is not None:
        body["spec"]["namespaceSelector"] = selector
    return body


@pytest.mark.parametrize(
    ("selector", "labels", "ok"),
    [
        (None, {}, True),
        ({}, {"a": "b"}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "a"}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["x"]}]}, {}, True),
        ({"matchExpressions": [{"key": "t", "operator": "Exists"}]}, {"t": ""}, True),
        ({"matchExpressions": [{"key": "t", "operator": "DoesNotExist"}]}, {"t": ""}, False),
        ({"matchExpressions": [{"key": "t", "operator": "Bogus"}]}, {"t": ""}, False),
    ],
)
def test_label_selectors(selector: Any, labels: dict[str, str], ok: bool) -> None:
    assert policy.selects(selector, labels) is ok


def test_fields_come_from_the_highest_priority_policy_that_sets_them() -> None:
    policies = [
        pol("default", 0, None, maxRecipients=1000, maxActiveCampaigns=2,
            providerSharePercent={"*": 50}),
        pol("team-a", 10, {"matchLabels": {"team": "a"}}, maxRecipients=50_000),
        pol("aaa-tie", 10, {"matchLabels": {"team": "a"}}, maxActiveCampaigns=5,
            s3=[{"bucket": "lists", "prefix": "team-a/"}]),
    ]  # fmt: skip
    a = policy.resolve(policies, {"team": "a"})
    assert (a.max_recipients, a.max_active) == (50_000, 5)
    assert a.shares == {"*": 0.5}
    assert a.source == {
        "maxRecipients": "team-a",
        "maxActiveCampaigns": "aaa-tie",
        "providerSharePercent": "default",
        "s3": "aaa-tie",
    }
    assert a.s3_allows("lists", "team-a/x.txt") and not a.s3_allows("lists", "team-b/x.txt")
    other = policy.resolve(policies, {"team": "b"})
    assert (other.max_recipients, other.max_active) == (1000, 2)
    assert not other.s3_allows("lists", "team-a/x.txt")  # no policy allows: nothing is
    assert policy.resolve([], {}) == policy.Limits()


def test_share_lookup() -> None:
    assert policy.share_for({"ses": "0.3", "*": "0.5"}, "ses") == 0.3
    assert policy.share_for({"ses": "0.3", "*": "0.5"}, "sns") == 0.5
    assert policy.share_for({b"ses": b"0.3"}, "mock") is None  # type: ignore[dict-item]
    assert policy.share_for({}, "ses") is None


def test_recipients_by_channel() -> None:
    prefixes = ("arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/",)
    ok = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/1234"
    assert rcpt.problem("push", ok, prefixes) is None
    foreign = "arn:aws:sns:us-east-1:999999999999:endpoint/GCM/app/1234"
    assert rcpt.problem("push", foreign, prefixes) == rcpt.FOREIGN_TARGET
    assert rcpt.problem("push", ok, ()) == rcpt.FOREIGN_TARGET  # none configured: none allowed
    assert rcpt.problem("sms", "+14155550100") is None
    for bad in ("14155550100", "+0123456789", "+1 415 555 0100", "+1234567890123456"):
        assert rcpt.problem("sms", bad) == rcpt.INVALID_ADDRESS, bad
    assert rcpt.FOREIGN_TARGET in rcpt.NEVER_RETRIED


def test_size_limit_names_limit_and_policy() -> None:
    limits = policy.Limits(max_recipients=100, source={"maxRecipients": "team-a"})
    admission.check_size("ns1", limits, 100)
    admission.check_size("ns1", limits, None)  # a streamed list: counted while read
    with pytest.raises(admission.PolicyViolation) as exc:
        admission.check_size("ns1", limits, 101)
    msg = str(exc.value)
    assert msg.startswith(events.POLICY_PREFIX)
    assert "101 recipients" in msg and "100" in msg and "NotifqPolicy team-a" in msg
    assert "namespace ns1" in msg


def test_queued_and_refused_campaigns_tell_why() -> None:
    queued = st.build(
        old={}, spec={}, generation=1, phase="Queued", counts=None, total=0, message="3 of 3"
    )
    conds = {c["type"]: c for c in queued["conditions"]}
    assert conds["Accepted"]["status"] == "False" and conds["Accepted"]["reason"] == "Queued"
    assert conds["Reconciling"]["status"] == "True"
    assert [e.reason for e in events.transitions({}, queued)] == ["Queued"]
    started = {"phase": "Processing", "total": 5}
    assert "Started" in [e.reason for e in events.transitions(queued, started)]
    refused = {"phase": "Failed", "message": events.POLICY_PREFIX + "too big"}
    (e,) = events.transitions({}, refused)
    assert (e.type, e.reason) == ("Warning", "PolicyViolation")
    (e,) = events.transitions({}, {"phase": "Failed", "message": "template error"})
    assert e.reason == "InvalidSpec"


def test_waiting_campaigns_are_let_in_by_creation_time() -> None:
    import uuid

    slots = Slots()
    woken: list[str] = []
    slots.on_free = woken.append
    first = Waiting("2026-11-30T10:00:00Z", "b", uuid.uuid4())
    second = Waiting("2026-11-30T10:00:01Z", "a", uuid.uuid4())
    slots.wait("ns", second)
    slots.wait("ns", first)
    assert slots.ahead("ns", first) == 0 and slots.ahead("ns", second) == 1
    slots.freed("ns")
    assert woken == ["ns"]
    slots.leave("ns", first.uid)
    slots.leave("ns", second.uid)
    slots.freed("ns")  # nobody waits: nobody is woken
    assert woken == ["ns"] and not slots.waiting


def test_sns_provider_refuses_a_foreign_target_before_any_call() -> None:
    """The workers check push targets too (a target stored before the prefixes were
    narrowed, an email campaign routed to SNS): refused, permanent, before any AWS call
    (there are no credentials here: a call would fail otherwise, and transiently)."""
    import asyncio

    from notifq.core.settings import WorkerSettings
    from notifq.worker.providers.base import Outbound
    from notifq.worker.providers.sns import SnsProvider

    prefix = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/"
    sns = SnsProvider(WorkerSettings(push_arn_prefixes=[prefix]))
    foreign = Outbound(
        seq=1, recipient="arn:aws:sns:us-east-1:999:endpoint/GCM/x/1", subject="s", body="b"
    )
    for channel in ("push", "email"):
        (outcome,) = asyncio.run(sns.send_many(channel, [foreign]))
        assert (outcome.result, outcome.error) == ("permanent", rcpt.FOREIGN_TARGET)
    asyncio.run(sns.close())
