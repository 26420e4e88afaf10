"""The campaign pipeline end to end: kubectl apply -> operator -> Postgres rows and
BullMQ jobs -> workers -> mock provider -> status back in the resource."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from harness import (
    Stack,
    assert_status_matches_db,
    campaign,
    mock_log,
    new_namespace,
    sent_recipients,
    wait_until,
)


def test_campaign_with_failures_completes(
    stack_factory: Callable[..., Stack], namespace: str
) -> None:
    stack = stack_factory(NOTIFQ_MOCK_LOG_DIR="")
    stack.apply(
        campaign(
            "load",
            namespace,
            recipients={"generate": {"count": 2000}},
            subject="Hi {{ recipient }}",
        )
    )
    fixed = [
        "ok1@example.com",
        "fail-always@example.com",
        "reject-me@example.com",
        "OK1@example.com",
        "",
        "not-an-address@",
        "ok2@example.com",
    ]
    stack.apply(campaign("fixed", namespace, recipients={"list": fixed}))
    done = {"Completed", "CompletedWithFailures"}
    cr = stack.wait_phase(namespace, "load", done, timeout=120)
    counts = assert_status_matches_db(stack, namespace, "load")
    assert counts.get("sent", 0) + counts.get("failed", 0) == 2000
    assert cr["status"]["phase"] == (
        "CompletedWithFailures" if counts.get("failed") else "Completed"
    )
    assert cr["status"]["progress"] == "100%"
    conds = {c["type"]: c for c in cr["status"]["conditions"]}
    assert conds["Complete"]["status"] == "True"
    assert conds["Complete"]["observedGeneration"] == cr["metadata"]["generation"]

    cr = stack.wait_phase(namespace, "fixed", done, timeout=60)
    assert cr["status"]["phase"] == "CompletedWithFailures"
    assert_status_matches_db(stack, namespace, "fixed")
    with stack.db() as conn:
        rows = dict(
            (
                (r, (s, a, e))
                for r, s, a, e in conn.execute(
                    "SELECT recipient, status, attempts, last_error FROM message "
                    "WHERE campaign_id = %s",
                    (cr["metadata"]["uid"],),
                ).fetchall()
            )
        )
        load_failed = conn.execute(
            "SELECT count(*) FROM message WHERE campaign_id = %s AND status = 'failed' "
            "AND (attempts <> 4 OR last_error IS NULL)",
            (stack.get(namespace, "load")["metadata"]["uid"],),
        ).fetchone()
    # duplicates (case-insensitive) and blank lines were dropped
    assert sorted(rows) == sorted(
        [
            "ok1@example.com",
            "fail-always@example.com",
            "reject-me@example.com",
            "not-an-address@",
            "ok2@example.com",
        ]
    )
    assert rows["ok1@example.com"][0] == "sent"
    # a transient failure is tried 1 + 3 times; a rejection once; an invalid address never
    assert rows["fail-always@example.com"][:2] == ("failed", 4)
    assert "ServiceUnavailable" in rows["fail-always@example.com"][2]
    assert rows["reject-me@example.com"][:2] == ("failed", 1)
    assert "MessageRejected" in rows["reject-me@example.com"][2]
    assert rows["not-an-address@"] == ("failed", 0, "invalid address")
    assert load_failed == (0,)


def test_a_huge_campaign_is_cut_in_at_most_max_chunks_beside_a_small_one(
    stack_factory: Callable[..., Stack], namespace: str
) -> None:
    """``NOTIFQ_MAX_CHUNKS`` bounds a campaign's jobs and counter rows: a list longer than
    chunk size times that gets bigger chunks, set when it is attached; a small campaign of
    another namespace keeps the configured size. Both deliver every message once."""
    stack = stack_factory(
        NOTIFQ_CHUNK_SIZE="10", NOTIFQ_MAX_CHUNKS="8", NOTIFQ_MOCK_FAILURE_RATE="0"
    )
    other = new_namespace(stack.control_plane)
    domain = f"huge-{namespace}.test"
    gen = {"generate": {"count": 1000, "domain": domain, "include": ["a@x.test"]}}
    stack.apply(campaign("huge", namespace, provider="mock", recipients=gen))
    small = [f"s{i}@small-{other}.test" for i in range(25)]
    stack.apply(campaign("small", other, provider="mock", recipients={"list": small}))
    for ns, name in ((namespace, "huge"), (other, "small")):
        stack.wait_phase(ns, name, {"Completed"}, timeout=120)
        assert_status_matches_db(stack, ns, name)
    huge, by = stack.get(namespace, "huge"), stack.get(other, "small")
    assert (huge["status"]["sent"], by["status"]["sent"]) == (1001, 25)
    with stack.db() as conn:
        shape = {
            name: conn.execute(
                "SELECT c.chunk_size, count(k.chunk), max(k.sent) FROM campaign c "
                "JOIN message_count k ON k.campaign_id = c.id WHERE c.id = %s "
                "GROUP BY c.chunk_size",
                (cr["metadata"]["uid"],),
            ).fetchone()
            for name, cr in (("huge", huge), ("small", by))
        }
    # 1,001 messages in at most 8 chunks: 130 each (a multiple of 10), the last one 91
    assert shape == {"huge": (130, 8, 130), "small": (10, 3, 10)}
    sends = mock_log(stack)
    assert len(sends) == 1026 and set(sends.values()) == {1}


def test_suspend_stops_sends_and_resume_finishes(
    stack_factory: Callable[..., Stack], namespace: str
) -> None:
    stack = stack_factory(
        workers=1,
        NOTIFQ_MOCK_LATENCY_MS="100",
        NOTIFQ_MOCK_FAILURE_RATE="0",
        NOTIFQ_MAX_IN_FLIGHT="100",
        NOTIFQ_WRITE_BATCH="50",
    )
    # big enough that it cannot finish between "some progress" and the suspend
    spec = {"recipients": {"generate": {"count": 30000}}}
    stack.apply(campaign("slow", namespace, **spec))
    wait_until(
        lambda: stack.get(namespace, "slow").get("status", {}).get("sent", 0) > 500,
        60,
        "some progress",
    )
    stack.apply(campaign("slow", namespace, suspend=True, **spec))
    cr = stack.wait_phase(namespace, "slow", {"Suspended"}, timeout=30)
    uid = cr["metadata"]["uid"]
    time.sleep(1.5)  # sends already handed to the provider finish
    before = stack.counts(uid).get("sent", 0)
    time.sleep(3)
    after = stack.counts(uid).get("sent", 0)
    assert after == before, f"{after - before} messages sent while suspended"
    assert stack.counts(uid).get("pending", 0) > 0
    stack.apply(campaign("slow", namespace, suspend=False, **spec))
    cr = stack.wait_phase(namespace, "slow", {"Completed"}, timeout=300)
    assert cr["status"]["sent"] == 30000


def test_retry_failed_requeues_failed_messages(
    stack_factory: Callable[..., Stack], namespace: str, tmp_path: Path
) -> None:
    outage = tmp_path / "outage"
    outage.touch()
    stack = stack_factory(
        workers=1, NOTIFQ_MOCK_FAILURE_RATE="0", NOTIFQ_MOCK_OUTAGE_FILE=str(outage)
    )
    stack.apply(
        campaign("flaky", namespace, recipients={"generate": {"count": 300}}, retry={"attempts": 1})
    )
    cr = stack.wait_phase(namespace, "flaky", {"CompletedWithFailures"}, timeout=60)
    assert cr["status"]["failed"] == 300
    outage.unlink()
    stack.control_plane.kubectl(
        "annotate",
        "campaign",
        "flaky",
        "-n",
        namespace,
        "notifq.dev/retry-failed=first",
        "--overwrite",
    )
    cr = stack.wait_phase(namespace, "flaky", {"Completed"}, timeout=60)
    assert cr["status"]["sent"] == 300 and cr["status"]["failed"] == 0
    assert cr["status"]["retry"]["token"] == "first"
    assert cr["status"]["retry"]["retried"] == 300
    assert "completionTime" in cr["status"]


def test_operator_killed_while_enqueueing(
    stack_factory: Callable[..., Stack], namespace: str
) -> None:
    stack = stack_factory(NOTIFQ_MOCK_FAILURE_RATE="0", NOTIFQ_MOCK_LATENCY_MS="0")
    assert stack.operator is not None
    stack.apply(campaign("crash", namespace, recipients={"generate": {"count": 20000}}))
    # kill -9 as soon as the operator has started storing the campaign
    with stack.db() as conn:
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM campaign WHERE name = 'crash' AND namespace = %s",
                    (namespace,),
                ).fetchone()
                != (0,)
                or bool(stack.get(namespace, "crash").get("status"))
            ),
            30,
            "the operator to start on the campaign",
        )
    stack.operator.kill()
    stack.start_operator()
    cr = stack.wait_phase(namespace, "crash", {"Completed"}, timeout=120)
    uid = cr["metadata"]["uid"]
    with stack.db() as conn:
        n, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT seq) FROM message WHERE campaign_id = %s", (uid,)
        ).fetchone() or (0, 0)
    assert n == distinct == 20000
    log = mock_log(stack)
    assert sum(log.values()) == 20000 and max(log.values()) == 1


def test_worker_sigterm_finishes_in_flight_work(
    stack_factory: Callable[..., Stack], namespace: str
) -> None:
    stack = stack_factory(
        workers=1,
        NOTIFQ_MOCK_LATENCY_MS="50",
        NOTIFQ_MOCK_FAILURE_RATE="0",
        NOTIFQ_MAX_IN_FLIGHT="200",
    )
    # big enough that the worker is still sending when the signal comes
    stack.apply(campaign("term", namespace, recipients={"generate": {"count": 50000}}))
    uid = ""

    def started() -> bool:
        nonlocal uid
        cr = stack.get(namespace, "term")
        uid = cr["metadata"]["uid"]
        return bool(cr.get("status", {}).get("sent"))

    wait_until(started, 60, "sends to begin")
    worker = stack.workers[0]
    t0 = time.monotonic()
    assert worker.stop(signal.SIGTERM, timeout=30) == 0
    assert time.monotonic() - t0 < 30
    # everything the provider accepted is recorded as sent; nothing else is
    sent = sent_recipients(stack, uid)
    log = mock_log(stack)
    assert set(log) == sent and max(log.values()) == 1
    assert 0 < len(sent) < 50000
    stack.start_worker()
    stack.wait_phase(namespace, "term", {"Completed"}, timeout=300)
    assert sum(mock_log(stack).values()) == 50000
