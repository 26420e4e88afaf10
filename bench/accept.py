"""Accept-only benchmark cases (``accept-1m``, ``s3-10m``): how fast a big list is taken in.

The stack runs the operator and no worker, so the figures are the operator's and
Postgres's work alone. One Campaign is applied; then:

- ``accept_s``: apply -> every message row stored *and* every chunk job enqueued, as the
  database recorded it (``campaign.queued_at``, set after the last ``addBulk``), against
  the client's clock at the apply (same machine).
- ``stored_s``: apply -> the rows attached and ``materialized_at`` set (the jobs follow).
- ``operator_peak_rss_mib``: the operator process's peak resident set (VmHWM), start-up
  included.
- ``operator_cpu_s``, ``pg_cpu_s``: CPU seconds spent from the apply to the end.

Before the measured campaign, a campaign of one generated recipient is applied and
accepted (``warmup``): the figures are a running operator's, not its start-up's. A
fresh stack's first reconcile also waits for the operator's imports and watch and for
the new API server's watch cache (seen 0.4-0.8 s on a loaded machine, counted as
accepting before).

``generate`` makes the recipients inside Postgres; ``s3`` first writes an object of one
address per line into a local moto server (not timed) and names it in ``recipients.s3``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg
import testbed
from procstat import machine_busy, proc_stat, tree_cpu

from notifq.core.resource import API_VERSION, GROUP, PLURAL, POLICY_PLURAL, VERSION

BUCKET = "notifq-bench"
KEY = "recipients.txt"


def write_object(moto: testbed.Moto, count: int) -> int:
    """Upload ``count`` lines ``user<i>@example.com`` to the moto server; the bytes."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    with tempfile.TemporaryFile() as f:
        step = 100_000
        for lo in range(0, count, step):
            f.write(
                "".join(f"user{i}@example.com\n" for i in range(lo, min(count, lo + step))).encode()
            )
        size = f.tell()
        f.seek(0)
        s3.upload_fileobj(f, BUCKET, KEY)
    return size


def allow_bucket(api: Any) -> None:
    """A NotifqPolicy that lets every namespace read lists from the bench's bucket."""
    from kubernetes.client.exceptions import ApiException

    policy = {
        "apiVersion": API_VERSION,
        "kind": "NotifqPolicy",
        "metadata": {"name": "bench-s3"},
        "spec": {"s3": [{"bucket": BUCKET}]},
    }
    try:
        api.create_cluster_custom_object(GROUP, VERSION, POLICY_PLURAL, policy)
    except ApiException as exc:
        if exc.status != 409:  # already there from an earlier case
            raise


WARM_WAL_ROWS = 1_200_000
"""Rows written and dropped to warm Postgres's WAL: about 180 MiB of it."""


def warm_wal(db: psycopg.Connection[Any]) -> int:
    """Give the fresh Postgres the WAL segments a running one has (MiB written; 0 with
    ``BENCH_COLD_WAL=1``).

    A new cluster creates each 16 MiB segment on first use and fills it with zeros; a
    running one reuses old segments, renamed at each checkpoint. A million rows write about
    140 MiB of WAL, and on a brand-new cluster that took 0.2-0.3 s more here (a scratch
    Postgres, two COPYs and their indexes: 1.41-1.73 s against 1.13-1.42 s with recycled
    segments). Writing that much and a checkpoint before the apply measures the
    operator against a database that has been in use, not one just made."""
    if os.environ.get("BENCH_COLD_WAL") == "1":
        return 0
    lsn = db.execute("SELECT pg_current_wal_lsn()").fetchone()
    assert lsn is not None
    db.execute(
        "CREATE TABLE bench_warm_wal AS SELECT g, repeat('x', 100) AS pad "
        "FROM generate_series(1, %s) g",
        (WARM_WAL_ROWS,),
    )
    db.execute("DROP TABLE bench_warm_wal")
    db.execute("CHECKPOINT")
    row = db.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn[0],)).fetchone()
    assert row is not None
    return int(row[0]) >> 20


def warm_up(api: Any, db: psycopg.Connection[Any], stack: Any) -> None:
    """Apply a campaign of one recipient and wait until the operator has accepted it."""
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": "warmup", "namespace": "default"},
        "spec": {"recipients": {"generate": {"count": 1}}, "suspend": True},
    }
    uid = api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, manifest)[
        "metadata"
    ]["uid"]
    deadline = time.time() + 120
    while time.time() < deadline:
        row = db.execute("SELECT materialized_at FROM campaign WHERE id = %s", (uid,)).fetchone()
        if row is not None and row[0] is not None:
            return
        if not stack.operator.alive():
            raise RuntimeError(f"the operator exited:\n{stack.operator.tail()}")
        time.sleep(0.05)
    raise RuntimeError("the warm-up campaign was not accepted within 120 s")


def run(
    case: Any, workdir: Path, bench_stack: Callable[..., AbstractContextManager[Any]]
) -> dict[str, object]:
    from kubernetes import client, config

    moto: testbed.Moto | None = None
    extra: dict[str, str] = {}
    recipients: dict[str, Any] = {"generate": {"count": case.count}}
    size = 0
    if case.source == "s3":
        moto = testbed.Moto(workdir / case.name / "moto").start()
        t = time.time()
        size = write_object(moto, case.count)
        print(
            f"{case.name}: object of {size / 2**20:.0f} MiB written in {time.time() - t:.1f}s",
            file=sys.stderr,
        )
        extra = moto.env()
        recipients = {"s3": {"bucket": BUCKET, "key": KEY}}
    try:
        with bench_stack(case, workdir, extra) as stack:
            postmaster = int((stack.pg.datadir / "postmaster.pid").read_text().split()[0])
            config.load_kube_config(str(stack.cp.kubeconfig))
            api = client.CustomObjectsApi()
            if case.source == "s3":  # no s3 list is read unless a NotifqPolicy allows it
                allow_bucket(api)
            manifest = {
                "apiVersion": API_VERSION,
                "kind": "Campaign",
                "metadata": {"name": "bench", "namespace": "default"},
                "spec": {"recipients": recipients},
            }
            db = psycopg.connect(stack.database_url, autocommit=True)
            warm_up(api, db, stack)
            warm_mib = warm_wal(db)
            pg_cpu0 = tree_cpu(postmaster)
            op_cpu0 = proc_stat(stack.operator.pid)[0]
            busy0 = machine_busy()
            t_apply = time.time()
            created = api.create_namespaced_custom_object(
                GROUP, VERSION, "default", PLURAL, manifest
            )
            uid = created["metadata"]["uid"]
            deadline = t_apply + 1800
            next_look = t_apply + 1
            row: tuple[Any, ...] | None = None
            while time.time() < deadline:
                row = db.execute(
                    "SELECT extract(epoch FROM queued_at), extract(epoch FROM materialized_at), "
                    "total FROM campaign WHERE id = %s",
                    (uid,),
                ).fetchone()
                if row is not None and row[0] is not None:
                    break
                if not stack.operator.alive():
                    raise RuntimeError(f"the operator exited:\n{stack.operator.tail()}")
                if time.time() >= next_look:  # a refusal: looked for once a second, as
                    # each look is an API server request and both cores are measured
                    next_look = time.time() + 1
                    cr = api.get_namespaced_custom_object(
                        GROUP, VERSION, "default", PLURAL, "bench"
                    )
                    if (cr.get("status") or {}).get("phase") == "Failed":
                        raise RuntimeError(f"the campaign failed: {cr['status'].get('message')}")
                time.sleep(0.05)
            assert row is not None and row[0] is not None, "not accepted within 30 minutes"
            op_cpu, rss = proc_stat(stack.operator.pid)
            busy = machine_busy() - busy0
            db.close()
            return {
                "case": case.name,
                "accept_only": True,
                "messages": int(row[2]),
                "source": case.source,
                "object_mib": round(size / 2**20) if size else None,
                "accept_s": round(float(row[0]) - t_apply, 2),
                "stored_s": round(float(row[1]) - t_apply, 2),
                "operator_peak_rss_mib": round(rss / 1024),
                "operator_cpu_s": round(op_cpu - op_cpu0, 1),
                "pg_cpu_s": round(tree_cpu(postmaster) - pg_cpu0, 1),
                # every process's, the bench's own polling and the API server included
                "machine_cpu_s": round(busy, 1),
                "warm_wal_mib": warm_mib,
            }
    finally:
        if moto is not None:
            moto.stop()
