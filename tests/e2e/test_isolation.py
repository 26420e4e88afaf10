"""Blast radius: each hostile or broken campaign runs next to a bystander campaign in
another namespace, which must complete; the hostile one must reach its documented
final state. The bystander's completion time and the operator's loop latency are
printed per case (``pytest -s``), never asserted.

``NOTIFQ_ISOLATION_MEASURE_ONLY=1`` only measures (no assertions on the hostile
campaign, the bystander may fail to complete): that is how the "before" column of
docs/templates.md was taken on the code before these changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bystander import Bystander, Measurement, fmt
from harness import Stack, campaign, wait_until

from notifq.core.resource import RECIPIENTS_LABEL

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

MEASURE_ONLY = os.environ.get("NOTIFQ_ISOLATION_MEASURE_ONLY") == "1"
RESULTS = Path(os.environ.get("NOTIFQ_ISOLATION_RESULTS", "/tmp/notifq-isolation.json"))
FINAL = {"Completed", "CompletedWithFailures", "Failed", "Cancelled"}
WAIT = 15.0 if MEASURE_ONLY else 180.0
"""Seconds to wait for a hostile campaign's final state (measuring only: it may never come)."""

NESTED = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
GEN = {"generate": {"count": 1000}}

Check = Callable[[], None]


def _fails_at_validation(stack: Stack, ns: str, name: str, text: str) -> Check:
    def check() -> None:
        cr = stack.wait_phase(ns, name, FINAL, timeout=WAIT)
        assert cr["status"]["phase"] == "Failed", cr["status"]
        assert text in cr["status"]["message"], cr["status"]

        def warned() -> bool:
            out = stack.control_plane.kubectl("get", "events", "-n", ns, "-o", "json").stdout
            return any(
                e.get("reason") == "InvalidSpec" and e["involvedObject"]["name"] == name
                for e in json.loads(out)["items"]
            )

        wait_until(warned, min(WAIT, 30), f"an InvalidSpec Event for {name}")

    return check


def _fails_per_message(
    stack: Stack, ns: str, name: str, failed: int, text: str, total: int = 1000
) -> Check:
    def check() -> None:
        cr = stack.wait_phase(ns, name, FINAL, timeout=WAIT)
        st = cr["status"]
        assert (st["phase"], st["total"], st["failed"]) == (
            "CompletedWithFailures",
            total,
            failed,
        ), st
        assert st["sent"] == total - failed
        with stack.db() as conn:
            errors = conn.execute(
                "SELECT DISTINCT last_error FROM message WHERE campaign_id = %s "
                "AND status = 'failed'",
                (cr["metadata"]["uid"],),
            ).fetchall()
        assert errors and all(text in str(e[0]) for e in errors), errors

    return check


def _refused(stack: Stack, manifest: dict[str, Any], text: str) -> Check:
    import yaml

    out = stack.control_plane.kubectl(
        "apply", "-f", "-", input=yaml.safe_dump(manifest), check=False
    )

    def check() -> None:
        assert out.returncode != 0 and text in out.stderr, (out.returncode, out.stderr)

    return check


# -- the hostile cases: each applies its campaign(s) and returns what to check ----------
def invalid_body(body: str, reason: str) -> Callable[[Stack, str], Check]:
    """A campaign whose body fails the sample render at validation."""

    def start(stack: Stack, ns: str) -> Check:
        stack.apply(campaign("invalid", ns, recipients=GEN, body=body))
        return _fails_at_validation(stack, ns, "invalid", reason)

    return start


def failing_messages(body: str, failed: int, reason: str) -> Callable[[Stack, str], Check]:
    """A campaign whose body passes validation but fails ``failed`` of its 1,000 messages."""

    def start(stack: Stack, ns: str) -> Check:
        stack.apply(campaign("partial", ns, recipients=GEN, body=body))
        return _fails_per_message(stack, ns, "partial", failed, reason)

    return start


def header_injection(stack: Stack, ns: str) -> Check:
    literal = _refused(
        stack,
        campaign("inject", ns, recipients=GEN, subject="Hi\r\nBcc: evil@example.org"),
        "control characters",
    )
    stack.apply(
        campaign("inject2", ns, recipients=GEN, subject='Hi{{ "\\r\\n" }}Bcc: evil@example.org')
    )
    rendered = _fails_at_validation(stack, ns, "inject2", "rendered subject contains a control")

    def check() -> None:
        literal()
        rendered()

    return check


def nul_in_inline_list(stack: Stack, ns: str) -> Check:
    recipients = {"list": ["a@example.com", "b\x00@example.com"]}
    return _refused(stack, campaign("nul", ns, recipients=recipients), "control characters")


def nul_in_configmap(stack: Stack, ns: str) -> Check:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "list",
            "namespace": ns,
            "labels": {RECIPIENTS_LABEL: "true"},
        },
        "data": {"recipients": "a@example.com\nb\x00c@example.com\nd@example.com\n"},
    }
    stack.control_plane.kubectl("apply", "-f", "-", input=json.dumps(cm))
    stack.apply(campaign("nul-cm", ns, recipients={"configMapRef": {"name": "list"}}))
    return _fails_per_message(stack, ns, "nul-cm", 1, "control character", total=3)


def unparseable_payloads(stack: Stack, ns: str) -> Check:
    import asyncio

    from bullmq import Queue

    prefix, queue_name = stack.env["NOTIFQ_QUEUE_PREFIX"], "deliveries"
    payloads = {"junk-version": {"v": 99}, "junk-fields": {"v": 1, "campaign": "nope"}}

    async def inject() -> None:
        q = Queue(queue_name, {"connection": stack.env["NOTIFQ_REDIS_URL"], "prefix": prefix})
        for job_id, data in payloads.items():
            await q.add("deliver", data, {"jobId": job_id, "attempts": 5})
        await q.close()

    asyncio.run(inject())

    def check() -> None:
        import redis

        r = redis.Redis.from_url(stack.env["NOTIFQ_REDIS_URL"])

        def failed() -> bool:
            return all(r.zscore(f"{prefix}:{queue_name}:failed", j) is not None for j in payloads)

        wait_until(failed, min(WAIT, 60), "the unreadable jobs to fail")
        for job_id in payloads:
            job = r.hgetall(f"{prefix}:{queue_name}:{job_id}")
            assert b"unreadable job payload" in job[b"failedReason"], job
            attempts = job.get(b"atm", job.get(b"attemptsMade"))  # BullMQ's names for it
            assert attempts == b"1", job  # failed for good, not retried

    return check


def always_failing_job(stack: Stack, ns: str) -> Check:
    """A chunk whose job raises on every attempt (here: its stored template was broken
    behind the operator's back) is replaced a bounded number of times, then its
    messages fail with the job's error."""
    retry = {"attempts": 1, "backoffMs": 100}
    stack.apply(campaign("doomed", ns, recipients=GEN, suspend=True, retry=retry))
    cr = stack.wait_phase(ns, "doomed", {"Suspended"}, timeout=min(WAIT, 60))
    with stack.db() as conn:  # no worker runs yet, so none has this template cached
        conn.execute(
            "UPDATE campaign SET body = %s WHERE id = %s", ("{% broken", cr["metadata"]["uid"])
        )
    resume = ["--type=merge", '-p={"spec":{"suspend":false}}']
    stack.control_plane.kubectl("patch", "campaign", "doomed", "-n", ns, *resume)
    return _fails_per_message(stack, ns, "doomed", 1000, "delivery job failed")


def inline_list_10k(stack: Stack, ns: str) -> Check:
    entries = [f"user{i}@example.com" for i in range(10_000)]
    import yaml

    out = stack.control_plane.kubectl(
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump(campaign("big", ns, recipients={"list": entries})),
        check=False,
    )

    def check() -> None:
        assert out.returncode == 0, out.stderr
        cr = stack.wait_phase(ns, "big", FINAL, timeout=WAIT)
        assert (cr["status"]["phase"], cr["status"]["sent"]) == ("Completed", 10_000)
        annotations = cr["metadata"].get("annotations", {})
        assert not any("last-handled-configuration" in k for k in annotations), annotations

    return check


def alone(stack: Stack, ns: str) -> Check:
    return lambda: None


CASES: dict[str, Callable[[Stack, str], Check]] = {
    "alone (no hostile campaign)": alone,
    "nested-loop body": invalid_body(NESTED, "CPU budget"),
    "for over range(10**9)": invalid_body(
        "{% for i in range(10**9) %}x{% endfor %}", "Range too big"
    ),
    "macro recursion": invalid_body(
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion too deep"
    ),
    "100 MB output": invalid_body(
        "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}", "output over its budget"
    ),
    "ZeroDivisionError at one index": failing_messages(
        "{{ 1000 // (index - 250) }}", 1, "ZeroDivisionError"
    ),
    "CPU hog at 1 % of indexes": failing_messages(
        "{% if index % 100 == 7 %}" + NESTED + "{% endif %}ok", 10, "CPU budget"
    ),
    "1 GB allocation at one index": failing_messages(
        "{% if index == 5 %}{{ 'x' | center(10**9) }}{% endif %}ok", 1, "memory budget"
    ),
    "subject with CR/LF (header injection)": header_injection,
    "NUL in inline recipient": nul_in_inline_list,
    "NUL in ConfigMap list": nul_in_configmap,
    "unparseable job payloads": unparseable_payloads,
    "job failing on every attempt": always_failing_job,
    "10,000-entry inline list (kubectl apply)": inline_list_10k,
}


BEFORE_WORKERS = {"job failing on every attempt"}
"""Cases that prepare their campaign before any worker runs."""


def _record(case: str, m: Measurement, error: str | None) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[case] = {
        "bystander_seconds": m.seconds,
        "loop_gap_seconds": m.max_status_gap,
        "hostile_error": error,
    }
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"\nISOLATION | {case} | bystander {fmt(m)} | hostile: {error or 'as documented'}")


def _forget(stack: Stack, ns: str) -> None:
    """Remove the hostile campaigns, finalizers and all, so that the operators of later
    tests (they watch every namespace) do not meet them again: on code that cannot
    contain them they would spoil every later measurement."""
    kubectl = stack.control_plane.kubectl
    names = kubectl("get", "campaigns", "-n", ns, "-o", "name").stdout.split()
    for name in names:
        kubectl("patch", name, "-n", ns, "--type=merge", '-p={"metadata":{"finalizers":null}}')
    if names:
        kubectl("delete", "campaigns", "--all", "-n", ns, "--wait=false")


@pytest.mark.parametrize("case", list(CASES))
def test_bystander_completes_next_to(
    case: str, stack_factory: Callable[..., Stack], namespace: str
) -> None:
    stack = stack_factory(workers=0, NOTIFQ_MOCK_FAILURE_RATE="0")
    bystander = Bystander(stack, deadline=60 if MEASURE_ONLY else 120)
    check: Check | None = None
    error: str | None = None
    if case not in BEFORE_WORKERS:
        bystander.start_workers()
    try:
        check = CASES[case](stack, namespace)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
    if case in BEFORE_WORKERS:
        bystander.start_workers()
    bystander.start()
    m = bystander.wait()
    if check is not None:
        try:
            check()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
    _record(case, m, error)
    _forget(stack, namespace)
    if MEASURE_ONLY:
        return
    assert m.seconds is not None, f"the bystander did not complete next to: {case}"
    assert (m.final["phase"], m.final["sent"]) == ("Completed", bystander.count), m.final
    assert error is None, error
    assert stack.operator is not None and stack.operator.alive()
