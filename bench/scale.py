"""Scale cases of ``bench/run.py`` (issue #16): many campaigns, one huge campaign.

- ``fleet``: 1,000 Campaigns, 900 of them small and finished first, then 100 active
  ones of 10,000 messages each (mock latency 50 ms, 2 workers). While the 100 drain:
  ``operator_cpu_pct`` (operator CPU as % of one core), ``status_lag_p95_s`` (per
  campaign, how long the database had already been ahead of what its resource showed,
  p95 over its samples every 0.25 s; the worst campaign; the database's times are the
  rows' own ``updated_at``), ``pg_cpu_s`` (Postgres CPU; the benchmark queries nothing
  while the campaigns drain).
- ``api-1m``: ``detail_p50_ms``/``detail_p99_ms`` of ``GET /campaigns/{id}`` on a finished
  campaign of 1,000,000 messages, 8 connections, with ``wrk`` (bench/api_load.py's first
  choice; hack/setup.sh installs it; ``client`` names the tool), then the same with
  bench/api_load.py's aiohttp and httpx loops (``aiohttp_*``, ``httpx_*``; without wrk
  the aiohttp loop's are the ``detail_*``). The clients share the machine's two cores
  with the API: httpx spends 1.8-2.8 ms of CPU per request of its own (more than the
  API), so its latencies mostly measure the client queueing for a core; the aiohttp
  loop takes about a fifth of that, but its 8 connections share one Python loop, whose
  own scheduling is in every latency it reports; wrk, in C, takes the least and drives
  each connection on its own. With each, the API process's CPU per request
  (``api_cpu_ms_per_request``, steadier than latencies).

Both only create Campaign resources and read the database with plain ``count(*)``, so
they run against any notifq version that has the same resource.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psycopg
import testbed
from api_load import account_env, aiohttp_load, bearer, grant_reads, httpx_load, wrk_load
from procstat import proc_stat

from notifq.core.phases import FINAL_PHASES
from notifq.core.resource import API_VERSION, GROUP, PLURAL, VERSION

FINISHED = 900
ACTIVE = 100
ACTIVE_SIZE = 10_000
FINISHED_SIZE = 5
NS = "default"


def _manifest(name: str, count: int, role: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": name, "namespace": NS, "labels": {"bench.notifq.dev/role": role}},
        "spec": {"provider": "mock", "recipients": {"generate": {"count": count}}},
    }


def _phases(api: Any, role: str) -> dict[str, dict[str, Any]]:
    out = api.list_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, label_selector=f"bench.notifq.dev/role={role}"
    )
    return {i["metadata"]["uid"]: i.get("status") or {} for i in out["items"]}


def _wait_final(api: Any, role: str, n: int, timeout: float, procs: list[Any]) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        statuses = _phases(api, role)
        done = sum(s.get("phase") in FINAL_PHASES for s in statuses.values())
        if len(statuses) == n and done == n:
            return
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited during the run:\n{proc.tail()}")
        time.sleep(2)
    raise TimeoutError(f"{role} campaigns not final after {timeout}s")


def _lag_p95(
    database_url: str, uid: str, samples: list[tuple[float, int]], percentile: Any
) -> float:
    """p95 over one campaign's resource samples of how long the database had already
    been ahead of the count the resource showed. The database's times are the rows' own
    (``updated_at`` of each final write), so no sampling query ran during the drain."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM updated_at) FROM message WHERE campaign_id = %s "
            "AND status <> 'pending' ORDER BY 1",
            (uid,),
        ).fetchall()
    final = [float(r[0]) for r in rows]
    lags = []
    for t_cr, shown in samples:
        # the database was ahead of ``shown`` from the moment its (shown+1)-th row was final
        ahead = final[shown] if shown < len(final) else None
        lags.append(0.0 if ahead is None or ahead > t_cr else t_cr - ahead)
    return float(percentile(lags, 95))


def run_fleet(stack: Any, proc_stat: Any, tree_cpu: Any, percentile: Any) -> dict[str, object]:
    from kubernetes import client, config

    config.load_kube_config(str(stack.cp.kubeconfig))
    api = client.CustomObjectsApi()
    procs = [stack.operator, *stack.workers]
    t0 = time.time()
    for i in range(FINISHED):
        api.create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, _manifest(f"done-{i:04d}", FINISHED_SIZE, "finished")
        )
    _wait_final(api, "finished", FINISHED, 1800, procs)
    print(f"fleet: {FINISHED} finished campaigns in {time.time() - t0:.1f}s", file=sys.stderr)
    time.sleep(5)  # let the operator settle

    postmaster = int((stack.pg.datadir / "postmaster.pid").read_text().split()[0])
    pg_cpu0 = tree_cpu(postmaster)
    op_cpu0 = proc_stat(stack.operator.pid)[0]
    t_start = time.time()
    for i in range(ACTIVE):
        api.create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, _manifest(f"active-{i:03d}", ACTIVE_SIZE, "active")
        )
    # only the resources are sampled while the campaigns drain (no query of ours loads
    # Postgres); when the database reached each count is read from the rows afterwards
    cr_series: dict[str, list[tuple[float, int]]] = {}
    deadline = time.time() + 3600
    while time.time() < deadline:
        statuses = _phases(api, "active")
        t_cr = time.time()
        for uid, st in statuses.items():
            cr_series.setdefault(uid, []).append(
                (t_cr, int(st.get("sent", 0)) + int(st.get("failed", 0)))
            )
        if len(statuses) == ACTIVE and all(
            s.get("phase") in FINAL_PHASES for s in statuses.values()
        ):
            break
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited during the run:\n{proc.tail()}")
        time.sleep(0.25)
    elapsed = time.time() - t_start
    op_cpu = proc_stat(stack.operator.pid)[0] - op_cpu0
    pg_cpu = tree_cpu(postmaster) - pg_cpu0
    worst = max(_lag_p95(stack.database_url, uid, s, percentile) for uid, s in cr_series.items())
    return {
        "case": "fleet",
        "campaigns": FINISHED + ACTIVE,
        "active_messages": ACTIVE * ACTIVE_SIZE,
        "drain_s": round(elapsed, 1),
        "operator_cpu_pct": round(100 * op_cpu / elapsed, 1),
        "status_lag_p95_s": round(worst, 2),
        "pg_cpu_s": round(pg_cpu, 1),
    }


def run_api(stack: Any, count: int = 1_000_000, seconds: float = 15, conns: int = 8) -> dict:  # type: ignore[type-arg]
    from kubernetes import client, config

    config.load_kube_config(str(stack.cp.kubeconfig))
    api = client.CustomObjectsApi()
    port = testbed.free_port()
    grant_reads(stack.cp)
    api_proc = stack.stack.start_api(
        port,
        NOTIFQ_JWT_SECRET=secrets.token_urlsafe(48),
        NOTIFQ_LOG_LEVEL="WARNING",
        **account_env(),
    )
    base = f"http://127.0.0.1:{port}"
    testbed.wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, 60, "the API")
    auth = bearer(base)
    created = api.create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, _manifest("big", count, "big")
    )
    uid = created["metadata"]["uid"]
    t0 = time.time()
    _wait_final(api, "big", 1, 1800, [stack.operator, *stack.workers])
    print(f"api-1m: {count} messages final in {time.time() - t0:.1f}s", file=sys.stderr)
    target = f"{base}/campaigns/{uid}"
    detail = httpx.get(target, timeout=120, headers=auth).json()
    assert detail["progress"]["sent"] == count, detail
    api_pid = api_proc.pid
    row: dict[str, Any] = {"case": "api-1m", "messages": count, "connections": conns}
    clients: list[tuple[str, Callable[..., Awaitable[tuple[float, float, float]]]]] = [
        ("aiohttp", aiohttp_load),
        ("httpx", httpx_load),
    ]
    if shutil.which("wrk"):  # its own timeout (2 s) is far above any latency here
        clients.insert(0, ("wrk", lambda url, seconds, conns, request_timeout, headers:
                               asyncio.to_thread(wrk_load, url, seconds, conns, headers,
                                                 echo=False)))  # fmt: skip
    for i, (tool, loop) in enumerate(clients):
        p50, p99, rps, cpu = _load(loop, target, seconds, conns, api_pid, auth)
        # the first client's figures are the case's; the others' are named after them
        prefix = "detail_" if i == 0 else f"{tool}_"
        cpu_key = "api_cpu_ms_per_request" if i == 0 else f"{tool}_api_cpu_ms_per_request"
        if i == 0:
            row["client"] = tool
        row[f"{prefix}p50_ms"] = round(p50, 1)
        row[f"{prefix}p99_ms"] = round(p99, 1)
        row[f"{prefix}rps"] = round(rps)
        row[cpu_key] = round(cpu, 2)
    return row


def _load(
    loop: Any, target: str, seconds: float, conns: int, api_pid: int, headers: dict[str, str]
) -> tuple[float, float, float, float]:
    """p50 and p99 (ms), requests/s, and the API process's CPU ms per request (steadier
    than the latencies on shared cores)."""
    cpu0 = proc_stat(api_pid)[0]
    p50, p99, rps = asyncio.run(loop(target, seconds, conns, request_timeout=120, headers=headers))
    cpu = proc_stat(api_pid)[0] - cpu0
    return p50, p99, rps, 1000 * cpu / max(1.0, rps * seconds)
