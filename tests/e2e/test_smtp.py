"""The SMTP provider against a real SMTP server (Mailpit, hack/mailpit.py): what the server
received (headers, body, count) next to a bystander campaign in another namespace; STARTTLS
and implicit TLS with AUTH; a wrong password (the messages wait, the campaign's status shows
the relay's answer through the shared quota of NOTIFQ_RATE_LIMIT_SMTP, none is lost); a
relay that drops connections mid-batch (nothing lost, duplicates within the stated bound);
a storm of 4xx answers (messages wait, none fails inside the retry budget).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from bystander import Bystander, start_bystander
from cutting_proxy import CuttingProxy
from harness import Stack, campaign, wait_until
from mailpit import Mailpit, Security

# the bystander watches its campaign through the kubernetes client (self-signed test bed)
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

SENDER = "campaigns@notifq.test"
USER, PASSWORD = "notifq", "s3cret-pw"


@pytest.fixture
def mailpit_factory(tmp_path: Path) -> Iterator[Callable[..., Mailpit]]:
    started: list[Mailpit] = []

    def make(**kwargs: Any) -> Mailpit:
        mp = Mailpit(tmp_path / f"mailpit-{len(started)}", **kwargs).start()
        started.append(mp)
        return mp

    yield make
    for mp in started:
        mp.stop()


def smtp_env(
    mp: Mailpit,
    *,
    port: int | None = None,
    security: Security = "none",
    password: str | None = None,
    **extra: str,
) -> dict[str, str]:
    env = {
        "NOTIFQ_MOCK_FAILURE_RATE": "0",  # the bystander's messages go to the mock
        "NOTIFQ_SMTP_HOST": "localhost",
        "NOTIFQ_SMTP_PORT": str(port or mp.smtp_port),
        "NOTIFQ_SMTP_SECURITY": security,
        "NOTIFQ_SMTP_FROM": SENDER,
        "NOTIFQ_SMTP_MAX_CONNECTIONS": "3",
        "NOTIFQ_SMTP_MESSAGES_PER_CONNECTION": "25",
        **extra,
    }
    if mp.ca_file is not None:
        env["NOTIFQ_SMTP_CA_FILE"] = str(mp.ca_file)
    if password is not None:
        env["NOTIFQ_SMTP_USERNAME"] = USER
        env["NOTIFQ_SMTP_PASSWORD"] = password
    return env


def people(n: int, tag: str) -> list[str]:
    return [f"{tag}{i}@company.test" for i in range(n)]


def smtp_campaign(name: str, ns: str, recipients: list[str], **spec: Any) -> dict[str, Any]:
    return campaign(
        name,
        ns,
        provider="smtp",
        recipients={"list": recipients},
        subject="Hello {{ recipient }}",
        body="Message {{ index }} for {{ recipient }}",
        **spec,
    )


def rows(stack: Stack, uid: str) -> dict[str, tuple[str, int, str | None, str | None]]:
    """recipient -> (status, attempts, last_error, provider message id)."""
    with stack.db() as conn:
        got = conn.execute(
            "SELECT recipient, status, attempts, last_error, provider_message_id "
            "FROM message WHERE campaign_id = %s",
            (uid,),
        ).fetchall()
    return {str(r[0]): (str(r[1]), int(r[2]), r[3], r[4]) for r in got}


def received(mp: Mailpit) -> Counter[str]:
    """How many times the server received a message for each recipient."""
    return Counter(t["Address"] for m in mp.messages() for t in m["To"])


def assert_bystander_done(by: Bystander, mp: Mailpit) -> None:
    by.assert_completed()
    assert not any(a.endswith("@example.com") for a in received(mp))  # never through SMTP


def test_campaign_received_headers_body_count_next_to_bystander(
    stack_factory: Callable[..., Stack], mailpit_factory: Callable[..., Mailpit], namespace: str
) -> None:
    mp = mailpit_factory()
    stack = stack_factory(workers=2, **smtp_env(mp))
    by = start_bystander(stack)
    to = people(60, "reader")
    stack.apply(smtp_campaign("letters", namespace, to))
    cr = stack.wait_phase(namespace, "letters", {"Completed", "CompletedWithFailures"}, 120)
    assert cr["status"]["phase"] == "Completed", cr["status"]
    assert_bystander_done(by, mp)

    got = received(mp)
    assert got == Counter({r: 1 for r in to})  # every message once, nothing else
    db = rows(stack, cr["metadata"]["uid"])
    assert all(v[0] == "sent" and v[3] for v in db.values())
    summaries = {m["To"][0]["Address"]: m for m in mp.messages()}
    for i in (0, 17, 59):
        r = to[i]
        full = mp.message(summaries[r]["ID"])
        assert full["Subject"] == f"Hello {r}"
        assert full["Text"].strip() == f"Message {i} for {r}"
        assert full["From"]["Address"] == SENDER
        headers = mp.headers(summaries[r]["ID"])
        assert headers["Message-Id"] == [db[r][3]]  # the id the row records
        assert db[r][3] == f"<{cr['metadata']['uid']}.{i}@notifq.test>"
        assert headers["Content-Type"][0].startswith("text/plain")
        assert headers["Date"]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_and_auth(
    stack_factory: Callable[..., Stack],
    mailpit_factory: Callable[..., Mailpit],
    namespace: str,
    security: Security,
) -> None:
    mp = mailpit_factory(security=security, auth=(USER, PASSWORD))
    stack = stack_factory(workers=1, **smtp_env(mp, security=security, password=PASSWORD))
    to = people(20, security)
    stack.apply(smtp_campaign("secure", namespace, to))
    cr = stack.wait_phase(namespace, "secure", {"Completed", "CompletedWithFailures"}, 90)
    assert cr["status"]["phase"] == "Completed", cr["status"]
    assert received(mp) == Counter({r: 1 for r in to})


def test_wrong_password_waits_with_the_reason_and_loses_nothing(
    stack_factory: Callable[..., Stack], mailpit_factory: Callable[..., Mailpit], namespace: str
) -> None:
    mp = mailpit_factory(security="starttls", auth=(USER, PASSWORD))
    # The relay's per-second limit goes through the shared quota, whose status shows the
    # pause to the jobs that meet it: the job that met the refusal comes back as the pause
    # ends, so several chunks (jobs) are needed for the others to find the relay paused.
    env = smtp_env(
        mp,
        security="starttls",
        NOTIFQ_SES_QUOTA_INTERVAL="2",
        NOTIFQ_RATE_LIMIT_SMTP="50",
        NOTIFQ_CHUNK_SIZE="5",
    )
    stack = stack_factory(workers=0, **env)
    bad = stack.start_worker(NOTIFQ_SMTP_USERNAME=USER, NOTIFQ_SMTP_PASSWORD="wrong")
    by = start_bystander(stack)
    to = people(30, "patient")
    stack.apply(smtp_campaign("locked", namespace, to))
    uid: str | None = None

    def refused() -> bool:
        nonlocal uid
        uid = stack.get(namespace, "locked").get("metadata", {}).get("uid")
        got = rows(stack, uid) if uid else {}
        # the first slice met the refusal; the others wait for the pause to end, untried
        return (
            len(got) == len(to)
            and all(v[0] == "pending" for v in got.values())
            and any("authentication refused: 535" in (v[2] or "") for v in got.values())
        )

    wait_until(refused, 90, "messages to wait with the relay's authentication answer")
    assert uid is not None
    assert all(v[1] == 0 for v in rows(stack, uid).values())  # no attempt spent
    assert "SMTP authentication refused: 535" in bad.log_path.read_text()
    assert mp.total() == 0

    st: dict[str, Any] = {}

    def status_says_why() -> bool:
        nonlocal st
        st = stack.get(namespace, "locked").get("status", {})
        quota = st.get("quota") or {}
        return str(quota.get("reason", "")).startswith("paused: SMTP authentication refused: 535")

    wait_until(status_says_why, 60, "the campaign's status to show the relay's answer")
    # one snapshot of the status (the pause comes and goes every NOTIFQ_SES_QUOTA_INTERVAL)
    assert st["phase"] == "Processing" and st["quota"]["provider"] == "smtp"
    assert 0 < st["quota"]["providerRate"] <= 50
    cond = next(c for c in st["conditions"] if c["type"] == "QuotaLimited")
    assert cond["status"] == "True" and cond["reason"] == "ProviderPaused"
    # the secret is fixed: the same campaign goes out, each message once
    bad.stop()
    stack.start_worker(NOTIFQ_SMTP_USERNAME=USER, NOTIFQ_SMTP_PASSWORD=PASSWORD)
    cr = stack.wait_phase(namespace, "locked", {"Completed", "CompletedWithFailures"}, 120)
    assert cr["status"]["phase"] == "Completed", cr["status"]
    assert received(mp) == Counter({r: 1 for r in to})
    assert_bystander_done(by, mp)


@pytest.mark.parametrize(
    ("mode", "cut_after"),
    [("anywhere", (600, 6_000)), ("after-data", (1, 12))],  # bytes / messages per connection
)
def test_relay_dropping_connections_mid_batch_loses_nothing(
    stack_factory: Callable[..., Stack],
    mailpit_factory: Callable[..., Mailpit],
    namespace: str,
    mode: Literal["anywhere", "after-data"],
    cut_after: tuple[int, int],
) -> None:
    mp = mailpit_factory()
    to = people(400, "dropped")
    with CuttingProxy(mp.smtp_port, cut_after=cut_after, mode=mode) as proxy:
        stack = stack_factory(workers=2, **smtp_env(mp, port=proxy.port))
        by = start_bystander(stack)
        stack.apply(smtp_campaign("bumpy", namespace, to, retry={"attempts": 10, "backoffMs": 200}))
        cr = stack.wait_phase(namespace, "bumpy", {"Completed", "CompletedWithFailures"}, 240)
        cuts, connections = proxy.cuts, proxy.connections
    print(f"proxy: {connections} connections, {cuts} cut by the proxy")
    assert cr["status"]["phase"] == "Completed", cr["status"]
    assert cuts >= 10  # the relay really did drop connections mid-batch
    got = received(mp)
    assert set(got) == set(to)  # nothing lost
    duplicates = sum(n - 1 for n in got.values())
    print(f"duplicates: {duplicates} (bound: one per cut connection, {cuts})")
    assert duplicates <= cuts
    if mode == "after-data":  # every cut fell in the window the bound is about
        assert duplicates >= 1
    assert_bystander_done(by, mp)


def test_4xx_storm_messages_wait_and_none_fails_inside_the_retry_budget(
    stack_factory: Callable[..., Stack], mailpit_factory: Callable[..., Mailpit], namespace: str
) -> None:
    mp = mailpit_factory(chaos=True)
    mp.set_chaos(Recipient=(451, 100))  # every RCPT answered "451" while the storm lasts
    stack = stack_factory(workers=2, **smtp_env(mp))
    by = start_bystander(stack)
    to = people(120, "stormy")
    stack.apply(smtp_campaign("storm", namespace, to, retry={"attempts": 8, "backoffMs": 500}))
    uid = ""

    def everyone_tried() -> bool:
        nonlocal uid
        uid = stack.get(namespace, "storm").get("metadata", {}).get("uid", "")
        got = rows(stack, uid) if uid else {}
        return len(got) == len(to) and all(
            v[0] == "pending" and v[1] >= 1 and "451" in (v[2] or "") for v in got.values()
        )

    wait_until(everyone_tried, 90, "every message to be answered 451 once")
    assert mp.total() == 0
    mp.set_chaos()  # the storm ends
    cr = stack.wait_phase(namespace, "storm", {"Completed", "CompletedWithFailures"}, 120)
    assert cr["status"]["phase"] == "Completed", cr["status"]
    assert cr["status"]["failed"] == 0
    assert received(mp) == Counter({r: 1 for r in to})
    attempts = Counter(v[1] for v in rows(stack, uid).values())
    print(f"attempts per message after the storm: {dict(sorted(attempts.items()))}")
    assert_bystander_done(by, mp)
