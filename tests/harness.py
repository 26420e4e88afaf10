"""Test harness: helpers to drive notifq's processes on the test bed (hack/testbed.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import testbed
import yaml
from psycopg import sql

from notifq.core import queries
from notifq.core.recipients import RECIPIENT_OF_CAMPAIGN
from notifq.core.resource import API_VERSION
from notifq.operator.store import CampaignRow

MESSAGES = (
    f"(SELECT m.campaign_id, m.seq, {RECIPIENT_OF_CAMPAIGN} AS recipient, m.status, "
    "m.attempts, m.last_error, m.provider, m.provider_message_id, m.sent_at, m.updated_at, "
    "m.claim_token, m.claim_owner, m.claimed_until, m.data "
    "FROM message m JOIN campaign c ON c.id = m.campaign_id) AS message"
)
"""``message`` with every row's address, a generated list's computed (its rows hold none,
migration 0014): ``FROM {MESSAGES}`` where a test reads recipients."""

ROOT = Path(__file__).resolve().parent.parent


class Stack(testbed.Stack):
    """notifq's processes on the test bed (testbed.Stack) plus what tests ask of them."""

    # helpers ---------------------------------------------------------------
    def apply(self, manifest: dict[str, Any]) -> None:
        self.control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def events(self, namespace: str, name: str) -> list[tuple[str, str]]:
        """(reason, message) of every Event about Campaign ``name``."""
        return [
            (e.get("reason", ""), e.get("message", "")) for e in events_of(self, namespace, name)
        ]

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        out = self.control_plane.kubectl("get", "campaign", name, "-n", namespace, "-o", "json")
        return dict(json.loads(out.stdout))

    def wait_phase(
        self, namespace: str, name: str, phases: set[str], timeout: float = 120
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def done() -> bool:
            nonlocal last
            last = self.get(namespace, name)
            return last.get("status", {}).get("phase") in phases

        try:
            testbed.wait_for(done, timeout, f"campaign {name} to reach {phases}", interval=0.5)
        except TimeoutError as exc:
            raise AssertionError(
                f"{exc}\nstatus: {last.get('status')}\n{self.diagnose(last)}"
            ) from exc
        return last

    def diagnose(self, cr: dict[str, Any]) -> str:
        """What a stuck campaign's failure message shows: the campaign's rows by status and
        claim, and the tails of the operator's and the workers' logs."""
        parts: list[str] = []
        uid = cr.get("metadata", {}).get("uid")
        if uid:
            try:
                with self.db() as conn:
                    rows = conn.execute(
                        "SELECT c.state, m.status, m.claim_owner, count(DISTINCT m.claim_token), "
                        "count(*), max(m.attempts), max(m.last_error), "
                        "(SELECT w.expires_at > now() FROM worker_lease w "
                        " WHERE w.id = m.claim_owner) FROM message m "
                        "JOIN campaign c ON c.id = m.campaign_id WHERE m.campaign_id = %s "
                        "GROUP BY 1, 2, 3",
                        (uid,),
                    ).fetchall()
                parts.append(
                    f"campaign {uid} rows (state, status, claim owner, claim tokens, n, "
                    "attempts, error, owner's lease live):"
                )
                parts.extend(f"  {r}" for r in rows)
            except Exception as exc:  # the database may be what is wrong
                parts.append(f"rows of {uid} not read: {exc}")
        if self.operator:
            parts.append(f"operator log:\n{self.operator.tail()}")
        for w in self.workers:
            try:
                lines = w.log_path.read_text(errors="replace").splitlines()
            except OSError:
                lines = []
            notable = [
                ln for ln in lines if any(k in ln for k in (" WARNING ", " ERROR ", "failed:"))
            ]
            notable = notable[-30:]
            parts.append(f"{w.log_path.name}, warnings and errors:\n" + "\n".join(notable))
            parts.append(f"{w.log_path.name}, last lines:\n" + "\n".join(lines[-15:]))
        return "\n".join(parts)

    def sent_twice(self, uid: str, recipients: Iterable[str], limit: int = 10) -> str:
        """What a failure over duplicates shows: for a few recipients of campaign ``uid``
        the mock received more than once, each arrival (the worker's pid, the time) and the
        message row; then every worker's warnings and errors (:meth:`diagnose`)."""
        wanted = set(list(recipients)[:limit])
        arrivals: dict[str, list[str]] = {r: [] for r in wanted}
        for path in sorted((self.workdir / "mock-log").glob("deliveries-*.log")):
            for line in path.read_text().splitlines():
                stamp, _, who = line.partition("\t")
                if who in wanted:
                    arrivals[who].append(f"{path.stem.split('-', 1)[1]}@{stamp}")
        with self.db() as conn:
            rows = conn.execute(
                "SELECT recipient, seq, attempts, round(extract(epoch FROM sent_at), 3), "
                f"round(extract(epoch FROM updated_at), 3) FROM {MESSAGES} "
                "WHERE campaign_id = %s AND recipient = ANY(%s) ORDER BY seq",
                (uid, sorted(wanted)),
            ).fetchall()
        parts = ["sent more than once (pid@arrival ...; seq, attempts, sent_at, updated_at):"]
        parts.extend(f"  {r[0]}: {' '.join(arrivals[r[0]])}; {r[1:]}" for r in rows)
        parts.append(self.diagnose({"metadata": {"uid": uid}}))
        return "\n".join(parts)

    def db(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True)

    def counts(self, uid: str) -> dict[str, int]:
        with self.db() as conn:
            rows = conn.execute(
                queries.COUNT_BY_STATUS,
                (uid,),
            ).fetchall()
        return {str(s): int(n) for s, n in rows}


def campaign_row(cid: uuid.UUID, provider: str = "auto") -> CampaignRow:
    """A small campaign row for storage-level tests (no resource behind it)."""
    return CampaignRow(
        id=cid,
        namespace="ns",
        name=f"c-{cid.hex[:6]}",
        channel="email",
        provider=provider,
        subject="s",
        body="b",
        max_attempts=4,
        backoff_ms=1000,
        chunk_size=100,
    )


def campaign(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A Campaign manifest."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@contextmanager
def notifq_policy(stack: Stack, name: str, namespace: str, **spec: Any) -> Iterator[None]:
    """A NotifqPolicy selecting only ``namespace`` (by the label the API server sets on
    every namespace), deleted afterwards: policies are cluster-scoped, other tests share
    the control plane."""
    body = {
        "apiVersion": API_VERSION,
        "kind": "NotifqPolicy",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            **spec,
        },
    }
    stack.apply(body)
    try:
        yield
    finally:
        stack.control_plane.kubectl("delete", "notifqpolicy", name, check=False)


def events_of(stack: Stack, namespace: str, name: str) -> list[dict[str, Any]]:
    """The core/v1 Events about Campaign ``name``."""
    out = stack.control_plane.kubectl(
        "get", "events", "-n", namespace, "-o", "json",
        f"--field-selector=involvedObject.name={name},involvedObject.kind=Campaign",
    )  # fmt: skip
    return list(json.loads(out.stdout)["items"])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    testbed.wait_for(predicate, timeout, what, interval=0.2)


def mock_log(stack: Stack) -> Counter[str]:
    """Every send the mock provider accepted, by recipient."""
    seen: Counter[str] = Counter()
    for path in (stack.workdir / "mock-log").glob("deliveries-*.log"):
        for line in path.read_text().splitlines():
            seen[line.split("\t", 1)[1]] += 1
    return seen


def messages_by_recipient(stack: Stack, uid: str, *columns: str) -> dict[str, tuple[Any, ...]]:
    """recipient -> the ``columns`` of its message, for every message of campaign ``uid``."""
    query = sql.SQL("SELECT recipient, {} FROM " + MESSAGES + " WHERE campaign_id = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with stack.db() as conn:
        rows = conn.execute(query, (uid,)).fetchall()
    return {str(r[0]): tuple(r[1:]) for r in rows}


def messages_in_order(database_url: str, cid: uuid.UUID, *columns: str) -> list[tuple[Any, ...]]:
    """(seq, ``columns``...) of every message of campaign ``cid``, in seq order (its
    ``recipient`` as a reader sees it: a generated list's computed, :data:`MESSAGES`)."""
    query = sql.SQL(
        "SELECT seq, {} FROM " + MESSAGES + " WHERE campaign_id = %s ORDER BY seq"
    ).format(sql.SQL(", ").join(map(sql.Identifier, columns)))
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, (cid,)).fetchall()


def new_namespace(control_plane: testbed.ControlPlane, prefix: str = "by") -> str:
    """A new namespace named ``prefix-<random>`` (a bystander's, or another tenant's)."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    return name


def sent_recipients(stack: Stack, uid: str) -> set[str]:
    """Recipients of a campaign whose rows say sent."""
    with stack.db() as conn:
        rows = conn.execute(
            f"SELECT recipient FROM {MESSAGES} WHERE campaign_id = %s AND status = 'sent'", (uid,)
        ).fetchall()
    return {str(r[0]) for r in rows}


def assert_counters_match(database_url: str) -> None:
    """The invariant of the per-chunk counters: for every campaign and chunk in the
    database, ``message_count`` equals the message rows counted one by one."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        wrong = conn.execute(queries.COUNTER_MISMATCHES).fetchall()
    assert not wrong, (
        f"counters disagree with the rows (campaign, chunk, rows..., counters...): {wrong[:10]}"
    )


def assert_status_matches_db(stack: Stack, ns: str, name: str) -> dict[str, int]:
    """The status shows the database's counts; the counters agree with the rows."""
    assert_counters_match(stack.database_url)
    cr = stack.get(ns, name)
    counts = stack.counts(cr["metadata"]["uid"])
    st = cr["status"]
    assert st["total"] == sum(counts.values())
    for key in ("pending", "sent", "failed", "cancelled"):
        assert st[key] == counts.get(key, 0), (key, st, counts)
    return counts


def deliveries(stack: Stack, domain: str) -> list[float]:
    """Times (unix seconds) of the sends the mock provider accepted for ``@domain``."""
    times: list[float] = []
    suffix = "@" + domain
    for path in (stack.workdir / "mock-log").glob("*.log"):
        for line in path.read_text().splitlines():
            stamp, _, recipient = line.partition("\t")
            if recipient.endswith(suffix):
                times.append(float(stamp))
    return times


def user_kubeconfig(stack: Stack, ns: str, sa: str, tmp_path: Path) -> Path:
    """A kubeconfig for a ServiceAccount of ``ns``: a user with only the rights RBAC gives it."""
    cp = stack.control_plane
    cp.kubectl("create", "serviceaccount", sa, "-n", ns)
    token = cp.kubectl("create", "token", sa, "-n", ns).stdout.strip()
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "t", "cluster": {"server": cp.server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": sa, "namespace": ns}}],
        "current-context": "t",
    }
    path = tmp_path / f"{sa}.kubeconfig"
    path.write_text(json.dumps(cfg))
    return path


PLUGIN = Path(sys.executable).with_name("kubectl-notifq")
"""The kubectl plugin, installed next to the interpreter."""


def plugin_as(kubeconfig: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``kubectl notifq ARGS`` with nothing but ``kubeconfig`` (a user's own rights)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    return subprocess.run([str(PLUGIN), f"--kubeconfig={kubeconfig}", *args],
                          capture_output=True, text=True, env=env, timeout=60,
                          check=False)  # fmt: skip


def start_reports_api(stack: Stack) -> int:
    """An API process serving the aggregated reports API too; the reports port."""
    port = testbed.free_port()
    stack.start_api(
        testbed.free_port(), NOTIFQ_JWT_SECRET=os.urandom(24).hex(), NOTIFQ_REPORTS_PORT=str(port)
    )
    return port
