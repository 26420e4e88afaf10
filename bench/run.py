"""``make bench``: notifq's pipeline measured on the local test bed.

For each case it starts a fresh stack (Postgres with default durability, Redis,
etcd + kube-apiserver, the operator and N worker processes), applies one
Campaign with kubectl and measures:

- accept: apply -> every message row stored and every job enqueued
  (``campaign.queued_at`` in the database, against the apply time)
- drain: apply -> final phase in the resource status
- msgs/s: total / drain
- status lag: for each sample of the resource, how long the database had already
  been ahead of the counts it showed (p50/p95; resource and database sampled
  every 200 ms)
- worker peak RSS (VmHWM) and CPU seconds per 1,000 messages (all workers)

Accept-only cases (``accept-1m``, ``s3-10m``; group ``scale``) run no worker and measure
how long storing and enqueueing take (bench/accept.py).

Usage: ``bench/run.py [--cases smoke|main|all|quota|smtp|scale|NAME,...] [--peer] [--json FILE]``;
``--peer`` also runs the reference delivery path (../shared/peer through
bench/peer.sh) for the same cases in the same sitting and prints ratios.
``BENCH_PG_FAST=1`` runs Postgres without fsync (to see what durability costs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import accept as accept_case  # bench/accept.py, beside this script
import psycopg
import quota as quota_case  # bench/quota.py, beside this script
import scale as scale_case  # bench/scale.py
import smtp as smtp_case  # bench/smtp.py
import testbed
import urllib3
from procstat import proc_stat, tree_cpu

from notifq.core import queries
from notifq.core.phases import FINAL_PHASES
from notifq.core.resource import API_VERSION, GROUP, PLURAL, VERSION

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    name: str
    count: int
    workers: int
    latency_ms: float
    failure: float
    extra_env: tuple[tuple[str, str], ...] = ()
    mock_log: bool = False
    """Keep the mock provider's delivery log (the quota case reads it)."""
    provider: str = "auto"
    """The Campaign's ``spec.provider``."""
    source: str = ""
    """Accept-only cases (no workers; bench/accept.py): ``generate`` or ``s3``."""


CASES = {
    "smoke-2k": Case("smoke-2k", 2_000, 2, 0, 0),
    "20k-2w": Case("20k-2w", 20_000, 2, 0, 0),
    # our own code in the reference's per-message pattern: one job per message, one
    # commit per message, a counter increment per message
    "naive-20k-2w": Case(
        "naive-20k-2w",
        20_000,
        2,
        0,
        0,
        (
            ("NOTIFQ_CHUNK_SIZE", "1"),
            ("NOTIFQ_WRITE_BATCH", "1"),
            ("NOTIFQ_NAIVE_COUNTER", "true"),
        ),
    ),
    "100k-1w": Case("100k-1w", 100_000, 1, 0, 0),
    "100k-2w": Case("100k-2w", 100_000, 2, 0, 0),
    "10k-200ms-20pct": Case("10k-200ms-20pct", 10_000, 2, 200, 0.2),
    "1m-2w": Case("1m-2w", 1_000_000, 2, 0, 0),
    # three campaigns at a mock provider that enforces a quota (bench/quota.py)
    "quota": Case(
        "quota",
        sum(quota_case.CAMPAIGNS.values()),
        2,
        20,
        0,
        (
            ("NOTIFQ_MOCK_QUOTA", str(quota_case.QUOTA)),
            ("NOTIFQ_RATE_LIMIT_MOCK", str(quota_case.QUOTA)),
        ),
        mock_log=True,
    ),
    # through the SMTP provider to a local Mailpit (bench/smtp.py)
    "smtp": Case("smtp", 20_000, 2, 0, 0, provider="smtp"),
    # bench/scale.py: 1,000 campaigns (100 active x 10,000, mock latency 50 ms)
    "fleet": Case(
        "fleet",
        scale_case.ACTIVE * scale_case.ACTIVE_SIZE,
        2,
        50,
        0,
        (("NOTIFQ_LOG_LEVEL", "WARNING"),),
    ),
    # bench/scale.py: GET /campaigns/{id} of a 1,000,000-message campaign
    "api-1m": Case("api-1m", 1_000_000, 2, 0, 0, (("NOTIFQ_LOG_LEVEL", "WARNING"),)),
    # accept only (bench/accept.py): apply -> every row stored and every job enqueued
    "accept-1m": Case("accept-1m", 1_000_000, 0, 0, 0, source="generate"),
    "s3-10m": Case("s3-10m", 10_000_000, 0, 0, 0, source="s3"),
}
GROUPS = {
    # issue 16's figures; s3-10m alone takes minutes (10,000,000 rows from an object)
    "scale": ["fleet", "api-1m", "accept-1m", "s3-10m"],
    "smoke": ["smoke-2k"],
    "main": ["naive-20k-2w", "20k-2w", "100k-1w", "100k-2w", "10k-200ms-20pct"],
    "all": ["naive-20k-2w", "20k-2w", "100k-1w", "100k-2w", "10k-200ms-20pct", "1m-2w"],
}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


@dataclass
class BenchStack:
    """One case's fresh stack: services, the operator and the workers."""

    dir: Path
    pg: testbed.Postgres
    redis: testbed.Redis
    cp: testbed.ControlPlane
    database_url: str
    env: dict[str, str]
    operator: testbed.Proc
    workers: list[testbed.Proc]
    stack: testbed.Stack


@contextmanager
def bench_stack(
    case: Case, workdir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[BenchStack]:
    """The test bed's Services and Stack for one case: Postgres (durable unless
    BENCH_PG_FAST=1), Redis, etcd + kube-apiserver, the operator and the case's workers."""
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    d = workdir / case.name
    durable = os.environ.get("BENCH_PG_FAST") != "1"
    with testbed.Services(d, durable=durable) as services:
        env = services.env(
            NOTIFQ_MOCK_LATENCY_MS=str(case.latency_ms),
            NOTIFQ_MOCK_FAILURE_RATE=str(case.failure),
            **dict(case.extra_env),
            **(extra_env or {}),
        )
        if case.mock_log:
            env["NOTIFQ_MOCK_LOG_DIR"] = str(d / "mock-log")
        with testbed.Stack(d, env, services.control_plane, services.database_url) as stack:
            op = stack.start_operator()
            workers = [stack.start_worker() for _ in range(case.workers)]
            time.sleep(3)  # let every process connect and block on the queue
            yield BenchStack(
                d,
                services.postgres,
                services.redis,
                services.control_plane,
                services.database_url,
                env,
                op,
                workers,
                stack,
            )


def run_case(case: Case, workdir: Path) -> dict[str, object]:
    from kubernetes import client, config

    with bench_stack(case, workdir) as stack:
        pg, cp, url = stack.pg, stack.cp, stack.database_url
        op, workers = stack.operator, stack.workers
        cpu0 = sum(proc_stat(w.pid)[0] for w in workers)
        postmaster = int((pg.datadir / "postmaster.pid").read_text().split()[0])
        pg_cpu0 = tree_cpu(postmaster)
        op_cpu0 = proc_stat(op.pid)[0]
        config.load_kube_config(str(cp.kubeconfig))
        api = client.CustomObjectsApi()
        manifest = {
            "apiVersion": API_VERSION,
            "kind": "Campaign",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {
                "provider": case.provider,
                "recipients": {"generate": {"count": case.count}},
            },
        }
        db = psycopg.connect(url, autocommit=True)
        t_apply = time.time()
        created = api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, manifest)
        uid = created["metadata"]["uid"]
        db_series: list[tuple[float, int]] = []
        cr_samples: list[tuple[float, int]] = []
        phase = ""
        deadline = time.time() + 1800
        while time.time() < deadline:
            # the per-chunk counters, written in the transaction of each outcome write
            # (tests check they equal the rows): O(chunks), so sampling five times a
            # second takes no CPU from the run. (Until 2026-12-01 this counted the rows
            # with a GROUP BY, an index scan of the whole campaign each time, and charged
            # its cost to the drain: more without a full status index.)
            row = db.execute(queries.COUNTERS, (uid,)).fetchone()
            now = time.time()
            db_series.append((now, sum(int(n) for n in row[2:]) if row else 0))
            cr = api.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "bench")
            st = cr.get("status") or {}
            cr_samples.append((time.time(), int(st.get("sent", 0)) + int(st.get("failed", 0))))
            phase = st.get("phase", "")
            if phase in FINAL_PHASES:
                break
            for proc in (op, *workers):  # a dead process would leave the run waiting
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited during the run:\n{proc.tail()}")
            time.sleep(0.2)
        t_final = cr_samples[-1][0]
        cpu1 = sum(proc_stat(w.pid)[0] for w in workers)
        pg_cpu = tree_cpu(postmaster) - pg_cpu0
        op_cpu = proc_stat(op.pid)[0] - op_cpu0
        rss = max(proc_stat(w.pid)[1] for w in workers)
        db.close()
        # accept: from the apply to every job enqueued, as the database recorded it
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM queued_at) FROM campaign WHERE id = %s", (uid,)
            ).fetchone()
        accept = float(row[0]) - t_apply if row and row[0] is not None else float("nan")
        # Lag of one resource sample: how long the database had already been ahead of
        # what the resource showed (0 when the resource was current). Measuring from
        # when the database first *reached* the shown value would count quiet spells
        # (backoff waits) as lag.
        lags = []
        for t_cr, value in cr_samples:
            t_ahead = next((t for t, v in db_series if v > value and t <= t_cr), None)
            lags.append(0.0 if t_ahead is None else t_cr - t_ahead)
        drain = t_final - t_apply
        t_first = next((t for t, v in db_series if v > 0), t_final)
        t_last = next((t for t, v in db_series if v >= case.count), t_final)
        print(
            f"{case.name}: first message final at {t_first - t_apply:.2f}s, last at "
            f"{t_last - t_apply:.2f}s, status final at {drain:.2f}s",
            file=sys.stderr,
        )
        return {
            "case": case.name,
            "messages": case.count,
            "workers": case.workers,
            "latency_ms": case.latency_ms,
            "failure": case.failure,
            "phase": phase,
            "accept_s": round(accept, 2),
            "drain_s": round(drain, 2),
            "msgs_per_s": round(case.count / drain),
            "lag_p50_s": round(percentile(lags, 50), 2),
            "lag_p95_s": round(percentile(lags, 95), 2),
            "worker_rss_mib": round(rss / 1024),
            "cpu_s_per_1k": round((cpu1 - cpu0) / case.count * 1000, 3),
            "pg_cpu_s": round(pg_cpu, 1),
            "operator_cpu_s": round(op_cpu, 1),
        }


COLUMNS = [
    "case",
    "messages",
    "workers",
    "latency_ms",
    "failure",
    "phase",
    "accept_s",
    "drain_s",
    "msgs_per_s",
    "lag_p50_s",
    "lag_p95_s",
    "worker_rss_mib",
    "cpu_s_per_1k",
    "pg_cpu_s",
    "operator_cpu_s",
]


def print_table(rows: list[dict[str, object]]) -> None:
    for r in rows:
        if r["case"] in SPECIAL or "accept_only" in r:
            print(f"{r['case']}: " + ", ".join(f"{k}={v}" for k, v in r.items() if k != "case"))
    rows = [r for r in rows if r["case"] not in SPECIAL and "accept_only" not in r]
    if not rows:
        return
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in COLUMNS), flush=True)


SPECIAL: dict[str, Callable[[BenchStack], dict[str, object]]] = {
    "quota": lambda stack: {},  # run above (it also draws a chart)
    "fleet": lambda stack: scale_case.run_fleet(stack, proc_stat, tree_cpu, percentile),
    "api-1m": scale_case.run_api,
}
"""Cases with figures of their own (one JSON row each, its name under ``case``)."""


PEER_LINE = re.compile(
    r"accept (?P<accept>\d+) ms .*\| drain (?P<drain>\d+) ms \| total (?P<total>\d+) ms "
    r"\| (?P<rate>[\d.]+) msgs/s"
)
PEER_RSS = re.compile(r"worker peak RSS MiB \[(?P<rss>[^\]]*)\]")


def run_peer(case: Case) -> dict[str, object]:
    """The reference delivery path (plain Node, ../shared/peer), same machine, same sitting."""
    env = {
        **os.environ,
        "MOCK_LATENCY_MS": str(int(case.latency_ms)),
        "MOCK_FAILURE_RATE": str(case.failure),
    }
    out = subprocess.run(
        [str(ROOT / "bench" / "peer.sh"), str(case.count), str(case.workers)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    m = PEER_LINE.search(out.stdout)
    if m is None:
        return {"case": case.name, "error": (out.stdout + out.stderr)[-1500:]}
    rss = PEER_RSS.search(out.stdout)
    return {
        "case": case.name,
        "accept_s": int(m["accept"]) / 1000,
        "drain_s": int(m["total"]) / 1000,
        "msgs_per_s": round(float(m["rate"])),
        "worker_rss_mib": rss["rss"] if rss else "?",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="main")
    parser.add_argument("--peer", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    names = GROUPS.get(args.cases) or args.cases.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="notifq-bench-"))
    rows = []
    try:
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            if CASES[name].source:
                rows.append(accept_case.run(CASES[name], workdir, bench_stack))
                continue
            if name == "quota":
                png = args.json.with_suffix(".png") if args.json else None
                with bench_stack(CASES[name], workdir) as stack:
                    rows.append(quota_case.run(stack, png))
                continue
            if name == "smtp":
                rows.append(smtp_case.run(CASES[name], workdir, run_case))
                continue
            if name in SPECIAL:
                with bench_stack(CASES[name], workdir) as stack:
                    rows.append(SPECIAL[name](stack))
                print(
                    json.dumps(rows[-1]), file=sys.stderr, flush=True
                )  # kept if a later case fails
                continue
            rows.append(run_case(CASES[name], workdir))
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    for r in rows:
        if r["case"] in SPECIAL or "accept_only" in r:
            continue
        print(
            f"summary {r['case']}: accept {r['accept_s']}s, drain {r['drain_s']}s, "
            f"{r['msgs_per_s']} msgs/s, lag p95 {r['lag_p95_s']}s, "
            f"worker RSS {r['worker_rss_mib']} MiB, {r['cpu_s_per_1k']} CPU s/1k msgs"
            + (
                f", {r['connections']} SMTP connections ({r['connections_at_once']} at once), "
                f"server received {r['received']} ({r['duplicates']} duplicates), "
                f"server CPU {r['server_cpu_s']} s"
                if "connections" in r
                else ""
            )
        )
    if args.peer:
        print("\nreference delivery path (../shared/peer), same cases, same sitting:")
        for r in rows:
            if r["case"] in SPECIAL or "accept_only" in r:
                continue
            peer = run_peer(CASES[str(r["case"])])
            if "error" in peer:
                print(f"peer {r['case']}: failed:\n{peer['error']}")
                continue
            ratio = float(r["msgs_per_s"]) / max(1.0, float(peer["msgs_per_s"]))  # type: ignore[arg-type]
            print(
                f"peer {r['case']}: accept {peer['accept_s']}s, end to end {peer['drain_s']}s, "
                f"{peer['msgs_per_s']} msgs/s, worker RSS {peer['worker_rss_mib']} MiB "
                f"-> {'our naive mode' if 'naive' in str(r['case']) else 'notifq'} is "
                f"{ratio:.1f}x the reference path"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
