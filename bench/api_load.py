"""Load on ``GET /campaigns/{id}`` of a 100,000-message campaign, with a token (reads need
one; each is authorized by Kubernetes for the bench account, answers cached 5 s).

Starts a private test bed (Postgres, Redis, etcd + kube-apiserver), the operator,
one worker (mock provider, latency 0, failure 0) and ``notifq-api`` as a real
uvicorn process; creates the campaign through the API, waits until it is done,
then drives the endpoint with ``wrk`` (``apt-get install -y wrk``) or, without
it, an httpx async loop. Prints p50/p99 latency and requests/s.

    .venv/bin/python bench/api_load.py [--count 100000] [--seconds 15] [--connections 8]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import testbed

ROOT = Path(__file__).resolve().parent.parent

PASSWORD = secrets.token_urlsafe(16)
EMAIL = "bench@example.com"
GROUP = "notifq-bench"
"""The bench account's Kubernetes group: every read is authorized (SubjectAccessReview,
cached ``NOTIFQ_AUTHZ_CACHE_SECONDS``) for it, so the load measures the real read path."""


def account_env() -> dict[str, str]:
    """The API's settings for the bench account."""
    return {"NOTIFQ_ADMIN_EMAIL": EMAIL, "NOTIFQ_ADMIN_PASSWORD": PASSWORD,
            "NOTIFQ_ADMIN_KUBE_GROUPS": f'["{GROUP}"]'}  # fmt: skip


def grant_reads(cp: testbed.ControlPlane) -> None:
    """Let the bench group read and create Campaigns in every namespace."""
    cp.kubectl("create", "clusterrole", GROUP, "--verb=get,list,create",
               "--resource=campaigns.notifq.dev")  # fmt: skip
    cp.kubectl("create", "clusterrolebinding", GROUP, f"--clusterrole={GROUP}", f"--group={GROUP}")


def bearer(base: str) -> dict[str, str]:
    """An Authorization header for the bench account."""
    login = httpx.post(f"{base}/auth/login", json={"email": EMAIL, "password": PASSWORD})
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['token']}"}


async def drive(
    get: Callable[[], Awaitable[None]], seconds: float, connections: int
) -> tuple[float, float, float]:
    """Call ``get`` from ``connections`` concurrent loops for ``seconds``: p50 and p99 latency
    (ms) and requests/s. The client adapters below only say how one GET is made."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await get()
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    return q[49] * 1000, q[98] * 1000, len(latencies) / elapsed


async def httpx_load(
    url: str,
    seconds: float,
    connections: int,
    request_timeout: float = 5.0,
    headers: dict[str, str] | None = None,
) -> tuple[float, float, float]:
    """:func:`drive` with httpx's async client."""
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections), timeout=request_timeout, headers=headers
    ) as client:

        async def get() -> None:
            resp = await client.get(url)
            resp.raise_for_status()

        return await drive(get, seconds, connections)


async def aiohttp_load(
    url: str,
    seconds: float,
    connections: int,
    request_timeout: float = 5.0,
    headers: dict[str, str] | None = None,
) -> tuple[float, float, float]:
    """As :func:`httpx_load` with aiohttp's client, which spends about a fifth of httpx's
    CPU per request: on two shared cores the client then takes less from the server."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=request_timeout)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:

        async def get() -> None:
            async with session.get(url) as resp:
                resp.raise_for_status()
                await resp.read()

        return await drive(get, seconds, connections)


def wrk_load(
    url: str, seconds: float, connections: int, headers: dict[str, str], *, echo: bool = True
) -> tuple[float, float, float]:
    """wrk (C, two threads): p50 and p99 latency (ms) and requests/s. A load generator that
    spends little CPU of the two cores the API shares with it, each connection a client
    of its own; ``echo`` prints its report."""
    extra = [a for k, v in headers.items() for a in ("-H", f"{k}: {v}")]
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", *extra, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if echo:
        print(out)

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, label
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps
    return ms("50%"), ms("99%"), float(rps.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--tool", choices=["auto", "wrk", "httpx", "aiohttp"], default="auto")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="notifq-apiload-"))
    try:
        with testbed.Services(work) as services:
            port = testbed.free_port()
            env = services.env(
                NOTIFQ_MOCK_LATENCY_MS="0",
                NOTIFQ_MOCK_FAILURE_RATE="0",
                NOTIFQ_JWT_SECRET=secrets.token_urlsafe(48),
                **account_env(),
                NOTIFQ_LOG_LEVEL="WARNING",
            )
            with testbed.Stack(work, env, services.control_plane, services.database_url) as stack:
                stack.start_operator()
                stack.start_worker()
                grant_reads(services.control_plane)
                stack.start_api(port)
                measure(args, f"http://127.0.0.1:{port}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def measure(args: argparse.Namespace, base: str) -> None:
    testbed.wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, 60, "the API")
    auth = bearer(base)
    created = httpx.post(
        f"{base}/campaigns",
        json={"name": "api load", "recipientCount": args.count},
        headers=auth,
        timeout=30,
    ).json()
    target = f"{base}/campaigns/{created['campaignId']}"
    t0 = time.monotonic()
    testbed.wait_for(
        lambda: httpx.get(target, headers=auth).json()["status"] == "completed", 600, "the campaign"
    )
    print(f"campaign of {args.count} delivered in {time.monotonic() - t0:.1f}s")
    print(httpx.get(target, headers=auth).json())
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "httpx"
    if tool == "wrk":
        p50, p99, rps = wrk_load(target, args.seconds, args.connections, auth)
    elif tool == "aiohttp":
        p50, p99, rps = asyncio.run(
            aiohttp_load(target, args.seconds, args.connections, headers=auth)
        )
    else:
        p50, p99, rps = asyncio.run(
            httpx_load(target, args.seconds, args.connections, headers=auth)
        )
    print(
        f"GET /campaigns/{{id}} ({args.count} messages, {tool}, {args.connections} conns, "
        f"{args.seconds:.0f}s): p50 {p50:.1f} ms, p99 {p99:.1f} ms, {rps:.0f} req/s"
    )


if __name__ == "__main__":
    sys.exit(main())
