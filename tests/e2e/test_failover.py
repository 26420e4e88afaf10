"""Provider failover with real parts: SES on the moto server (behind a proxy that takes it
down) as the primary, SMTP to Mailpit as the secondary (``NOTIFQ_PROVIDER_FAILOVER``).

SES goes down mid-campaign: every message is delivered exactly once across the two
servers, each row names the provider that delivered it, the campaign's status, an Event
and the workers' metrics count the failover, and a bystander campaign in another
namespace finishes as if alone; once SES answers again, a later campaign goes through
it. SES's daily quota used up pauses SES and sends nothing through the relay: a quota is
not an outage. (The moto server never answers ``Throttling``; that Throttling never
fails over is shown in tests/unit/test_failover.py, on real botocore errors.)
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import testbed
from bystander import Bystander
from harness import Stack, campaign, messages_by_recipient, wait_until
from mailpit import Mailpit
from moto_ses import aws_env, ses_messages, verified_ses
from outage_proxy import OutageProxy
from prometheus_client.parser import text_string_to_metric_families

# the bystander watches its campaign through the kubernetes client (self-signed test bed)
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

SENDER = "campaigns@notifq.test"
OPEN_SECONDS = 2


@pytest.fixture
def ses_url(tmp_path: Path) -> Iterator[str]:
    """A moto server of this test's own (SES's 24-hour quota counts per server), its
    sender verified: its URL."""
    server = testbed.Moto(tmp_path / "moto").start()
    try:
        verified_ses(server.url, SENDER)
        yield server.url
    finally:
        server.stop()


def failover_stack(
    stack_factory: Callable[..., Stack], ses_url: str, mp: Mailpit, workers: int, **extra: str
) -> tuple[Stack, list[int]]:
    """A stack whose SES at ``ses_url`` fails over to the SMTP relay of ``mp``, with
    ``workers`` workers that serve metrics; the stack and their metrics ports."""
    stack = stack_factory(workers=0, **failover_env(ses_url, mp, **extra))
    ports = [testbed.free_port() for _ in range(workers)]
    for port in ports:
        stack.start_worker(NOTIFQ_METRICS_PORT=str(port))
    return stack, ports


def failover_env(ses_url: str, mp: Mailpit, **extra: str) -> dict[str, str]:
    """SES at ``ses_url`` failing over to the SMTP relay of ``mp``."""
    return {
        **aws_env(ses_url, SENDER),
        "NOTIFQ_MOCK_FAILURE_RATE": "0",  # the bystander's messages go to the mock
        "NOTIFQ_SMTP_HOST": "127.0.0.1",
        "NOTIFQ_SMTP_PORT": str(mp.smtp_port),
        "NOTIFQ_SMTP_SECURITY": "none",
        "NOTIFQ_SMTP_FROM": SENDER,
        "NOTIFQ_PROVIDER_FAILOVER": json.dumps({"email": {"ses": "smtp"}}),
        "NOTIFQ_FAILOVER_FAILURE_THRESHOLD": "3",
        "NOTIFQ_FAILOVER_OPEN_SECONDS": str(OPEN_SECONDS),  # probes find it still down
        "NOTIFQ_RATE_LIMIT_SES": "20",  # a campaign that lasts long enough to cut SES
        "NOTIFQ_CHUNK_SIZE": "25",  # jobs for both workers
        **extra,
    }


def metric(ports: list[int], name: str, **labels: str) -> list[float]:
    """The value of sample ``name`` with ``labels`` in each worker (0 where absent)."""
    values = []
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        found = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    found += s.value
        values.append(found)
    return values


def rows(stack: Stack, uid: str) -> dict[str, tuple[Any, ...]]:
    """recipient -> (status, provider, provider message id, attempts)."""
    return messages_by_recipient(
        stack, uid, "status", "provider", "provider_message_id", "attempts"
    )


def sent_count(stack: Stack, uid: str) -> int:
    return stack.counts(uid).get("sent", 0)


def test_ses_down_mid_campaign_fails_over_to_smtp_exactly_once(
    stack_factory: Callable[..., Stack], ses_url: str, mailpit: Mailpit, namespace: str
) -> None:
    with OutageProxy(int(ses_url.rpartition(":")[2])) as proxy:
        stack, ports = failover_stack(stack_factory, proxy.url, mailpit, 2)
        by = Bystander(stack, count=2_000)
        by.start_workers(0)
        people = [f"reader{i}@company.test" for i in range(150)]
        stack.apply(
            campaign(
                "news",
                namespace,
                recipients={"list": people},
                subject="Hello {{ recipient }}",
                body="Message {{ index }} for {{ recipient }}",
            )
        )
        uid = ""

        def some_sent_through_ses() -> bool:
            nonlocal uid
            uid = stack.get(namespace, "news").get("metadata", {}).get("uid", "")
            return bool(uid) and sent_count(stack, uid) >= 40

        wait_until(some_sent_through_ses, 120, "40 messages sent through SES")
        proxy.down()
        by.start()  # sent while the workers fail over
        cr = stack.wait_phase(namespace, "news", {"Completed", "CompletedWithFailures"}, 180)
        st = cr["status"]
        assert st["phase"] == "Completed" and st["failed"] == 0, st
        by.assert_completed()

        handed = metric(ports, "notifq_provider_failover_total", channel="email", to="smtp")
        breakers = metric(ports, "notifq_provider_breaker_open", provider="ses")

        proxy.up()  # SES is back: a half-open probe finds it, the breakers close
        # every breaker last opened before this; once NOTIFQ_FAILOVER_OPEN_SECONDS passed,
        # each worker's next slice is a probe (before that, all would go to the relay)
        time.sleep(OPEN_SECONDS + 1)
        later = [f"later{i}@company.test" for i in range(40)]
        stack.apply(campaign("later", namespace, recipients={"list": later}))
        done = stack.wait_phase(namespace, "later", {"Completed", "CompletedWithFailures"}, 120)
        assert done["status"]["phase"] == "Completed", done["status"]

    db_later = rows(stack, done["metadata"]["uid"])
    print(f"after SES came back: {Counter(p for _, p, _, _ in db_later.values())}")

    # exactly once across the two servers
    ses_ids: dict[str, str] = {}
    for m in ses_messages(ses_url):
        for to in set(m["destinations"]):  # moto adds the To header's address again
            assert to not in ses_ids, f"{to} sent twice through SES"
            ses_ids[to] = str(m["id"])
    smtp_ids: Counter[str] = Counter()
    smtp_msg_id: dict[str, str] = {}
    for m in mailpit.messages():
        for to in m["To"]:
            smtp_ids[to["Address"]] += 1
            smtp_msg_id[to["Address"]] = str(m["MessageID"]).strip("<>")
    assert all(n == 1 for n in smtp_ids.values()), smtp_ids.most_common(3)
    assert not set(ses_ids) & set(smtp_ids), set(ses_ids) & set(smtp_ids)
    assert set(ses_ids) | set(smtp_ids) == {*people, *later}  # not the bystander's
    assert len(set(ses_ids) & set(people)) >= 40 and smtp_ids, (len(ses_ids), len(smtp_ids))
    back = {r: db_later[r][1] for r in later}
    assert all(p in ("ses", "smtp") for p in back.values()), back
    assert "ses" in back.values(), back  # SES delivers again once it answers
    for r, p in back.items():
        assert r in (ses_ids if p == "ses" else smtp_ids), (r, p)
    ses_ids = {r: i for r, i in ses_ids.items() if r in people}
    smtp_ids = Counter({r: n for r, n in smtp_ids.items() if r in people})

    # each row names the provider that delivered it, with that provider's message id
    db = rows(stack, uid)
    for r in people:
        status, provider, message_id, _ = db[r]
        assert status == "sent", db[r]
        if r in ses_ids:
            assert (provider, message_id) == ("ses", ses_ids[r]), (r, db[r])
        else:
            assert provider == "smtp" and message_id, (r, db[r])
            assert message_id.strip("<>") == smtp_msg_id[r], (r, db[r])
    attempts = Counter(a for _, p, _, a in db.values() if p == "smtp")
    print(f"SES {len(ses_ids)}, SMTP {len(smtp_ids)}; attempts of the SMTP ones: {attempts}")
    print(f"proxy: {proxy.refused_requests} requests refused on open connections")

    # the campaign's status and Events say so
    assert st["failover"] == {"ses>smtp": len(smtp_ids)}, st.get("failover")
    failovers = [m for r, m in stack.events(namespace, "news") if r == "ProviderFailover"]
    assert len(failovers) == 1 and failovers[0].startswith("ses down: "), failovers

    # the workers counted it: every message handed to the secondary, and SES's breaker
    # (open while SES was down; closed again in a worker that sent through SES later)
    assert sum(handed) == len(smtp_ids), handed
    assert max(breakers) == 1, breakers
    assert 0 in metric(ports, "notifq_provider_breaker_open", provider="ses")


def test_ses_daily_quota_used_up_is_not_an_outage(
    stack_factory: Callable[..., Stack], ses_url: str, mailpit: Mailpit, namespace: str
) -> None:
    # The moto server's SES account allows 200 sends per 24 h (GetSendQuota), read every
    # second here: past it SES is paused, and its messages wait instead of failing over.
    stack, ports = failover_stack(stack_factory, ses_url, mailpit, 1, NOTIFQ_SES_QUOTA_INTERVAL="1")
    people = [f"daily{i}@company.test" for i in range(260)]
    stack.apply(campaign("daily", namespace, recipients={"list": people}))

    def paused() -> bool:
        quota: dict[str, Any] = stack.get(namespace, "daily").get("status", {}).get("quota") or {}
        return str(quota.get("reason", "")).startswith("paused: daily quota")

    wait_until(paused, 120, "SES sending to pause for its daily quota")
    cr = stack.get(namespace, "daily")
    assert cr["status"]["failed"] == 0 and cr["status"]["pending"] > 0, cr["status"]
    db = rows(stack, cr["metadata"]["uid"])
    assert {p for s, p, _, _ in db.values() if s == "sent"} == {"ses"}
    assert mailpit.total() == 0  # nothing through the relay
    assert metric(ports, "notifq_provider_failover_total") == [0.0]
    assert "failover" not in cr["status"]
    assert metric(ports, "notifq_provider_breaker_open", provider="ses") == [0.0]


def test_a_message_on_its_last_attempt_fails_over_before_the_threshold(
    stack_factory: Callable[..., Stack], mailpit: Mailpit, namespace: str
) -> None:
    # SES's endpoint is a closed port from the start; the threshold is far away, so the
    # breaker opens only because a message met SES down on its last attempt.
    closed = f"http://127.0.0.1:{testbed.free_port()}"
    stack, _ = failover_stack(
        stack_factory, closed, mailpit, 1, NOTIFQ_FAILOVER_FAILURE_THRESHOLD="1000"
    )
    stack.apply(
        campaign(
            "tiny",
            namespace,
            recipients={"list": ["only@company.test"]},
            retry={"attempts": 2, "backoffMs": 200},
        )
    )
    cr = stack.wait_phase(namespace, "tiny", {"Completed", "CompletedWithFailures"}, 120)
    assert cr["status"]["phase"] == "Completed", cr["status"]
    assert rows(stack, cr["metadata"]["uid"])["only@company.test"][:2] == ("sent", "smtp")
    assert [t["Address"] for m in mailpit.messages() for t in m["To"]] == ["only@company.test"]
    assert cr["status"]["failover"] == {"ses>smtp": 1}
