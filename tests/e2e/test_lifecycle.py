"""A campaign's life on the real stack: created suspended or cancelled, suspended while
being stored, cancelled or deleted at every moment, deleted while no operator runs,
edited after start. Each case runs beside a bystander campaign in another namespace
that must complete untouched.

Deliveries are counted from the mock provider's timestamped log (one line per
accepted send), for the campaign's own recipient domain, against the time of the
request. The counts are printed (``-s``) for the issue notes.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis
import testbed
from harness import Stack, assert_counters_match, campaign, deliveries, wait_until

pytestmark = pytest.mark.timeout(600)

ROUNDS = 50
IN_FLIGHT = 100  # NOTIFQ_MAX_IN_FLIGHT per worker in the timing cases
PACED = {
    "NOTIFQ_MAX_IN_FLIGHT": str(IN_FLIGHT),
    "NOTIFQ_WRITE_BATCH": "50",
    "NOTIFQ_MOCK_LATENCY_MS": "200",
    "NOTIFQ_MOCK_FAILURE_RATE": "0",
}


def _domain(name: str, tag: str) -> str:
    return f"{name}-{tag}.example.com"


def _generated(name: str, ns: str, tag: str, count: int, **spec: Any) -> dict[str, Any]:
    return campaign(
        name,
        ns,
        provider="mock",
        recipients={"generate": {"count": count, "domain": _domain(name, tag)}},
        **spec,
    )


class Bystander:
    """A campaign in another namespace that must finish as if alone."""

    COUNT = 2000

    def __init__(self, stack: Stack, control_plane: testbed.ControlPlane) -> None:
        self.stack = stack
        self.tag = uuid.uuid4().hex[:6]
        self.namespace = f"t-{self.tag}-by"
        control_plane.kubectl("create", "namespace", self.namespace)
        # retries outlast the provider outage of the while-retrying case
        stack.apply(
            _generated(
                "bystander",
                self.namespace,
                self.tag,
                self.COUNT,
                retry={"attempts": 10, "backoffMs": 500},
            )
        )

    def check(self) -> None:
        cr = self.stack.wait_phase(self.namespace, "bystander", {"Completed"}, timeout=180)
        assert cr["status"]["sent"] == self.COUNT
        times = deliveries(self.stack, _domain("bystander", self.tag))
        assert len(times) == self.COUNT  # each once
        # whatever the test did to its own campaign, the counters equal the rows
        assert_counters_match(self.stack.database_url)


def _patch(stack: Stack, ns: str, name: str, spec: dict[str, Any]) -> None:
    stack.control_plane.kubectl(
        "patch", "campaign", name, "-n", ns, "--type", "merge", "-p", json.dumps({"spec": spec})
    )


def _uid(stack: Stack, ns: str, name: str) -> str:
    return str(stack.get(ns, name)["metadata"]["uid"])


def _jobs(stack: Stack, uids: list[str]) -> int:
    """Delivery jobs in Redis for these campaigns (any state)."""
    prefix = stack.env["NOTIFQ_QUEUE_PREFIX"]
    client = redis.Redis.from_url(stack.env["NOTIFQ_REDIS_URL"])
    try:
        return sum(len(list(client.scan_iter(f"{prefix}:*:{uid}.*", count=1000))) for uid in uids)
    finally:
        client.close()


def _row(stack: Stack, uid: str) -> tuple[Any, ...] | None:
    with stack.db() as conn:
        return conn.execute(
            "SELECT state, deleted_at, total, rate_limit FROM campaign WHERE id = %s", (uid,)
        ).fetchone()


# --- issue 21: created suspended or cancelled -------------------------------------------


CREATED = {"suspend": ("Suspended", {"suspend": True}), "cancel": ("Cancelled", {"cancel": True})}


@pytest.mark.parametrize("intent", sorted(CREATED))
def test_created_suspended_or_cancelled_sends_nothing(
    stack_factory: Callable[..., Stack],
    namespace: str,
    control_plane: testbed.ControlPlane,
    intent: str,
) -> None:
    """50 campaigns, small and large, created suspended (or cancelled) while two idle
    workers wait: no job, no send, until resumed; then every message once."""
    phase, spec = CREATED[intent]
    stack = stack_factory(workers=2, NOTIFQ_MOCK_LATENCY_MS="0", NOTIFQ_MOCK_FAILURE_RATE="0")
    bystander = Bystander(stack, control_plane)
    tag = uuid.uuid4().hex[:6]
    sizes = [20 if i % 2 == 0 else 5000 for i in range(ROUNDS)]
    for i, n in enumerate(sizes):
        stack.apply(_generated(f"c{i}", namespace, tag, n, **spec))
    uids = []
    for i in range(ROUNDS):
        cr = stack.wait_phase(namespace, f"c{i}", {phase}, timeout=120)
        uids.append(cr["metadata"]["uid"])
    time.sleep(2)  # idle workers had every chance to take a job
    sent = sum(len(deliveries(stack, _domain(f"c{i}", tag))) for i in range(ROUNDS))
    queued = _jobs(stack, uids)
    with stack.db() as conn:
        stored = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FROM message "
            "WHERE campaign_id = ANY(%s::uuid[])",
            (uids,),
        ).fetchone()
    bystander.check()
    print(
        f"\ncreated with {intent} x{ROUNDS} ({sum(sizes)} recipients): sent {sent}, "
        f"jobs {queued}, (pending, stored) rows {stored}"
    )
    assert sent == 0 and queued == 0
    if intent == "cancel":
        assert stored == (0, 0)  # never stored
        return
    assert stored == (sum(sizes), sum(sizes))
    for i in range(ROUNDS):
        _patch(stack, namespace, f"c{i}", {"suspend": False})
    resumed = 0
    for i, n in enumerate(sizes):
        cr = stack.wait_phase(namespace, f"c{i}", {"Completed"}, timeout=180)
        times = deliveries(stack, _domain(f"c{i}", tag))
        assert cr["status"]["sent"] == n and len(times) == n
        resumed += len(times)
    print(f"after resume: {resumed} of {sum(sizes)} delivered, each once")


@contextlib.contextmanager
def _table_locked(stack: Stack, table: str) -> Iterator[psycopg.Connection[Any]]:
    """Hold an EXCLUSIVE lock on ``table`` (reads go on; COPY and INSERT wait)."""
    conn = psycopg.connect(stack.database_url)
    try:
        conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        yield conn
    finally:
        conn.rollback()
        conn.close()


ATTACH = "ALTER TABLE message ATTACH PARTITION"
"""The last step of storing: the campaign's rows join ``message`` (operator/storing.py)."""


def _operator_waits_on(stack: Stack, statement: str) -> bool:
    with stack.db() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE query LIKE %s AND wait_event_type = 'Lock'",
            (statement + "%",),
        ).fetchone()
    return bool(row and row[0])


def test_suspend_set_while_being_stored(
    stack_factory: Callable[..., Stack], namespace: str, control_plane: testbed.ControlPlane
) -> None:
    stack = stack_factory(workers=2, NOTIFQ_MOCK_LATENCY_MS="0", NOTIFQ_MOCK_FAILURE_RATE="0")
    bystander = Bystander(stack, control_plane)
    tag = uuid.uuid4().hex[:6]
    bystander.stack.wait_phase(bystander.namespace, "bystander", {"Processing", "Completed"})
    n = 20_000
    for r in range(3):
        name = f"late{r}"
        # the rows are written into the campaign's own table; attaching it to `message`
        # waits: storing is under way
        with _table_locked(stack, "message"):
            stack.apply(_generated(name, namespace, tag, n))
            wait_until(lambda: _operator_waits_on(stack, ATTACH), 60, "the attach")
            _patch(stack, namespace, name, {"suspend": True})
        cr = stack.wait_phase(namespace, name, {"Suspended"}, timeout=120)
        time.sleep(1)
        sent = len(deliveries(stack, _domain(name, tag)))
        queued = _jobs(stack, [cr["metadata"]["uid"]])
        print(f"\nsuspended while stored, round {r}: sent {sent}, jobs {queued}")
        assert sent == 0 and queued == 0
        _patch(stack, namespace, name, {"suspend": False})
        cr = stack.wait_phase(namespace, name, {"Completed"}, timeout=120)
        assert cr["status"]["sent"] == n and len(deliveries(stack, _domain(name, tag))) == n
    bystander.check()


# --- issue 12 item 5: cancel and delete take effect at any moment ---------------------


def _request(stack: Stack, ns: str, name: str, action: str) -> float:
    """Delete or cancel; returns the time the API server had accepted it (kubectl
    returned: its own start-up is not the request)."""
    if action == "delete":
        out = stack.control_plane.kubectl(
            "delete", "campaign", name, "-n", ns, "--timeout=60s", check=False
        )
        assert out.returncode == 0, out.stderr  # no finalizer: gone at once
    else:
        _patch(stack, ns, name, {"cancel": True})
    return time.time()


MOMENTS = [
    ("before-storing", "delete"),
    ("before-storing", "cancel"),
    ("during-copy", "delete"),
    ("during-copy", "cancel"),
    ("during-enqueue", "delete"),
    ("while-sending", "delete"),
    ("while-sending", "cancel"),
    ("while-retrying", "delete"),
]
IDS = ["-".join(m) for m in MOMENTS]


@pytest.mark.parametrize(("moment", "action"), MOMENTS, ids=IDS)
def test_stop_at_any_moment(
    stack_factory: Callable[..., Stack],
    namespace: str,
    control_plane: testbed.ControlPlane,
    tmp_path: Any,
    moment: str,
    action: str,
) -> None:
    outage = tmp_path / "outage"
    env = dict(PACED, NOTIFQ_MOCK_OUTAGE_FILE=str(outage))
    if moment == "during-enqueue":
        env["NOTIFQ_CHUNK_SIZE"] = "2"  # 50,000 jobs: enqueueing takes seconds
        env["NOTIFQ_MAX_CHUNKS"] = "50000"
    stack = stack_factory(workers=2, **env)
    bystander = Bystander(stack, control_plane)
    stack.wait_phase(bystander.namespace, "bystander", {"Processing", "Completed"})
    tag = uuid.uuid4().hex[:6]
    name = "victim"
    count = 100_000 if moment in ("during-copy", "during-enqueue") else 20_000
    manifest = _generated(name, namespace, tag, count, retry={"attempts": 10, "backoffMs": 500})
    allowed = 2 * 2 * IN_FLIGHT  # in flight at the request, and until the operator saw it
    if moment == "before-storing":
        with _table_locked(stack, "campaign"):  # its first INSERT waits: nothing stored yet
            stack.apply(manifest)
            wait_until(lambda: _operator_waits_on(stack, "INSERT INTO campaign"), 60, "storing")
            t_req = _request(stack, namespace, name, action)
            time.sleep(1)
        allowed = 0
    elif moment == "during-copy":
        with _table_locked(stack, "message"):  # rows written, the attach waits
            stack.apply(manifest)
            wait_until(lambda: _operator_waits_on(stack, ATTACH), 60, "the attach")
            t_req = _request(stack, namespace, name, action)
            time.sleep(1)  # the operator sees the request while storing still waits
        allowed = 0
    elif moment == "during-enqueue":
        stack.apply(manifest)
        uid = _uid(stack, namespace, name)
        wait_until(lambda: _jobs(stack, [uid]) > 0, 60, "the first jobs")
        t_req = _request(stack, namespace, name, action)
    elif moment == "while-sending":
        stack.apply(manifest)
        wait_until(lambda: len(deliveries(stack, _domain(name, tag))) > 1000, 120, "sends")
        t_req = _request(stack, namespace, name, action)
    else:  # while-retrying: every send fails transiently, then jobs retry with backoff
        outage.touch()
        stack.apply(manifest)
        uid = _uid(stack, namespace, name)
        with stack.db() as conn:
            wait_until(
                lambda: (
                    (
                        conn.execute(
                            "SELECT count(*) FROM message WHERE campaign_id = %s AND attempts >= 2",
                            (uid,),
                        ).fetchone()
                        or (0,)
                    )[0]
                    > 0
                ),
                300,  # a wait, not a measurement: the full suite's load once took > 120 s
                "retries",
            )
        outage.unlink()
        wait_until(lambda: len(deliveries(stack, _domain(name, tag))) > 0, 120, "retried sends")
        t_req = _request(stack, namespace, name, action)

    # the request took effect: every row final, nothing pending
    def settled() -> bool:
        with stack.db() as conn:
            row = conn.execute(
                "SELECT c.id, c.state, c.deleted_at, "
                "(SELECT count(*) FROM message m WHERE m.campaign_id = c.id "
                " AND m.status = 'pending') FROM campaign c "
                "WHERE c.namespace = %s AND c.name = %s",
                (namespace, name),
            ).fetchone()
        if action == "cancel" and row is None:
            return bool(stack.get(namespace, name).get("status", {}).get("phase") == "Cancelled")
        return (
            row is not None
            and row[1] == "cancelled"
            and (action == "cancel" or row[2] is not None)
            and row[3] == 0
        )

    wait_until(settled, 120, "the request to take effect")
    time.sleep(1.5)  # sends handed to the provider before the request come back
    times = deliveries(stack, _domain(name, tag))
    after = sum(t > t_req for t in times)
    print(
        f"\n{action} {moment}: {len(times)} delivered in all, {after} after the request "
        f"(allowed {allowed})"
    )
    if stack.operator is not None:
        print([ln for ln in stack.operator.tail(400).splitlines() if "queued" in ln][-2:])
    assert after <= allowed
    if action == "cancel":
        stack.wait_phase(namespace, name, {"Cancelled"}, timeout=60)
    else:
        gone = control_plane.kubectl("get", "campaign", name, "-n", namespace, check=False)
        assert "NotFound" in gone.stderr
    bystander.check()


# --- issue 14: deletion needs no operator ------------------------------------------------


def test_delete_without_operator_and_orphan_sweep(
    stack_factory: Callable[..., Stack], namespace: str, control_plane: testbed.ControlPlane
) -> None:
    stack = stack_factory(workers=1, NOTIFQ_ORPHAN_SWEEP_INTERVAL="1", **PACED)
    assert stack.operator is not None
    bystander = Bystander(stack, control_plane)
    tag = uuid.uuid4().hex[:6]
    stack.apply(_generated("orphan", namespace, tag, 20_000))
    wait_until(lambda: len(deliveries(stack, _domain("orphan", tag))) > 500, 120, "sends")
    cr = stack.get(namespace, "orphan")
    uid = cr["metadata"]["uid"]
    assert not cr["metadata"].get("finalizers")  # the operator put none there
    assert stack.operator.stop(signal.SIGTERM, timeout=30) is not None
    out = control_plane.kubectl(
        "delete", "campaign", "orphan", "-n", namespace, "--timeout=20s", check=False
    )
    assert out.returncode == 0, out.stderr  # completes with no operator running
    row = _row(stack, uid)
    assert row is not None and row[0] == "active" and row[1] is None  # nobody noticed yet
    stack.start_operator()
    wait_until(
        lambda: (_row(stack, uid) or ("", None))[1] is not None, 60, "the orphan to be swept"
    )
    t_swept = time.time()
    assert stack.counts(uid).get("pending", 0) == 0
    time.sleep(1.5)
    times = deliveries(stack, _domain("orphan", tag))
    after = sum(t > t_swept for t in times)
    print(f"\norphan: {len(times)} delivered, {after} after the sweep cancelled it")
    assert after <= IN_FLIGHT
    bystander.check()


def test_finalizer_and_diff_base_of_earlier_releases_are_removed(
    stack: Stack, namespace: str
) -> None:
    manifest = campaign("legacy", namespace, recipients={"generate": {"count": 10}})
    manifest["metadata"]["finalizers"] = ["notifq.dev/finalizer"]
    old_copy = json.dumps({"spec": manifest["spec"]})  # the diff base of earlier releases
    manifest["metadata"]["annotations"] = {"notifq.dev/last-handled-configuration": old_copy}
    stack.apply(manifest)

    def cleaned() -> bool:
        meta = stack.get(namespace, "legacy")["metadata"]
        annotations = meta.get("annotations") or {}
        return not meta.get("finalizers") and not any(
            k.endswith("/last-handled-configuration") for k in annotations
        )

    wait_until(cleaned, 60, "the old finalizer and diff-base annotation to be removed")
    out = stack.control_plane.kubectl(
        "delete", "campaign", "legacy", "-n", namespace, "--timeout=20s", check=False
    )
    assert out.returncode == 0, out.stderr


# --- issue 12 item 6: spec edits after start are applied (the rest is refused: test_crd) --


def test_template_edit_while_being_stored_is_refused_not_ignored(
    stack_factory: Callable[..., Stack], namespace: str, control_plane: testbed.ControlPlane
) -> None:
    """status.startTime is set before the rows are stored: from then on the API server
    refuses subject/body/retry edits, so an edit is stored or refused, never dropped."""
    stack = stack_factory(workers=1, NOTIFQ_MOCK_LATENCY_MS="0", NOTIFQ_MOCK_FAILURE_RATE="0")
    bystander = Bystander(stack, control_plane)
    tag = uuid.uuid4().hex[:6]
    with _table_locked(stack, "campaign"):  # the operator's INSERT waits: not stored yet
        stack.apply(_generated("fenced", namespace, tag, 500, subject="first"))
        wait_until(lambda: _operator_waits_on(stack, "INSERT INTO campaign"), 60, "storing")
        assert stack.get(namespace, "fenced")["status"].get("startTime")
        out = control_plane.kubectl(
            "patch",
            "campaign",
            "fenced",
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            json.dumps({"spec": {"subject": "second"}}),
            check=False,
        )
        assert out.returncode != 0
        assert "cannot change once the campaign started" in out.stderr
    cr = stack.wait_phase(namespace, "fenced", {"Completed"}, timeout=120)
    assert cr["spec"]["subject"] == "first" and cr["status"]["sent"] == 500
    with stack.db() as conn:
        row = conn.execute(
            "SELECT subject FROM campaign WHERE id = %s", (cr["metadata"]["uid"],)
        ).fetchone()
    assert row == ("first",)
    bystander.check()


def test_rate_limit_and_schedule_edits_apply_to_a_running_campaign(
    stack_factory: Callable[..., Stack], namespace: str, control_plane: testbed.ControlPlane
) -> None:
    # small batches: a send waits for at most 10 tokens of the old limit
    stack = stack_factory(
        workers=1,
        NOTIFQ_MOCK_LATENCY_MS="0",
        NOTIFQ_MOCK_FAILURE_RATE="0",
        NOTIFQ_MAX_IN_FLIGHT="20",
        NOTIFQ_WRITE_BATCH="10",
    )
    bystander = Bystander(stack, control_plane)
    tag = uuid.uuid4().hex[:6]
    stack.apply(_generated("edit", namespace, tag, 3000, rateLimit=20))
    wait_until(lambda: len(deliveries(stack, _domain("edit", tag))) > 0, 60, "sends")
    uid = _uid(stack, namespace, "edit")
    _patch(stack, namespace, "edit", {"scheduleAt": "2999-01-01T00:00:00Z"})
    cr = stack.wait_phase(namespace, "edit", {"Scheduled"}, timeout=60)
    assert cr["status"]["observedGeneration"] == cr["metadata"]["generation"]
    assert (_row(stack, uid) or ())[0] == "suspended"
    time.sleep(1.5)
    held = len(deliveries(stack, _domain("edit", tag)))
    time.sleep(2)
    assert len(deliveries(stack, _domain("edit", tag))) == held  # held: nothing goes out
    _patch(stack, namespace, "edit", {"scheduleAt": None, "rateLimit": 100_000})
    wait_until(lambda: (_row(stack, uid) or ())[3] == 100_000, 30, "the new rate limit")
    cr = stack.wait_phase(namespace, "edit", {"Completed"}, timeout=120)
    assert cr["status"]["observedGeneration"] == cr["metadata"]["generation"]
    assert len(deliveries(stack, _domain("edit", tag))) == 3000
    bystander.check()
