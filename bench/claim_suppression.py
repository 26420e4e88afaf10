"""What the suppression lookup adds to the worker's claim (one statement per slice).

Starts a Postgres of its own (hack/testbed.py), stores one campaign of ``--messages``
rows, and times claim + release of every 500-row slice of it, in turns:

- ``without``: the claim statement as it was before the suppression list (no lookup);
- ``no-match``: the claim with the lookup, for a namespace with no entries (the list
  holds ``--entries`` entries of another namespace);
- ``listed``: the claim with the lookup in that namespace, one in ten of the campaign's
  recipients listed.

The cases take turns within each round (each pass after a VACUUM of the table), so
load from elsewhere falls on all of them alike. Prints milliseconds per slice claimed
(median of ``--rounds`` passes over the campaign) and per message.
Usage (from ``bench/``): ``../.venv/bin/python claim_suppression.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import testbed
from psycopg_pool import AsyncConnectionPool

from notifq.core.db import open_pool
from notifq.operator import storing
from notifq.operator.sources import GeneratedRecipients
from notifq.operator.store import CampaignRow
from notifq.worker import store

SLICE = 500
BASE = store.CLAIM_SQL.split("RETURNING")[0]
WITHOUT = BASE + f"RETURNING m.seq, {store.RECIPIENT}, m.attempts\n"


async def one_pass(
    pool: AsyncConnectionPool,
    cid: uuid.UUID,
    total: int,
    sql: str,
    ns: str,
    generated: tuple[int, str] | None,
) -> float:
    """Seconds to claim and release every slice once (the generated list's addresses
    computed, as a worker claims them: ``generated`` from its campaign row)."""
    first, domain = generated or (None, None)
    t = 0.0
    async with pool.connection() as conn:
        for lo in range(0, total, SLICE):
            seqs = list(range(lo, min(total, lo + SLICE)))
            params = {
                "token": "t", "owner": "bench", "lease": 60, "cid": cid, "seqs": seqs,
                "lo": seqs[0], "hi": seqs[-1], "live": [], "horizon": "", "grace": 0, "ns": ns,
                "first": first, "domain": domain,
            }  # fmt: skip
            t0 = time.perf_counter()
            cur = await conn.execute(sql, params, prepare=True)
            rows = await cur.fetchall()
            t += time.perf_counter() - t0
            assert len(rows) == len(seqs) and all(r[1] for r in rows)  # every address
            await conn.execute(
                "UPDATE message SET claim_token = NULL, claim_owner = NULL, claimed_until = NULL "
                "WHERE campaign_id = %s AND seq BETWEEN %s AND %s",
                (cid, seqs[0], seqs[-1]),
            )
    return t


async def main(messages: int, entries: int, rounds: int, workdir: Path) -> None:
    pg = testbed.Postgres(workdir / "postgres").start()
    try:
        url = pg.create_database("notifq_bench")
        testbed.migrate(url)
        pool = await open_pool(url)
        cid = uuid.uuid4()
        row = CampaignRow(cid, "bench", "bench", "email", "auto", "s", "b", 4, 1000, SLICE)
        await storing.materialize(
            pool, replace(row), GeneratedRecipients(messages, "example.com", []), state="active"
        )
        async with pool.connection() as conn:
            await conn.execute("ANALYZE message")
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO suppression (namespace, recipient, reason) "
                "SELECT 'bench', 'user' || (g * 10) || '@example.com', 'manual' "
                "FROM generate_series(0, %s - 1) g",
                (entries,),
            )
            await conn.execute("ANALYZE suppression")
        camp = await store.CampaignCache(pool).get(cid)
        assert camp is not None
        cases = {
            "without": (WITHOUT, "bench"),
            "no-match": (store.CLAIM_SQL, "other"),
            "listed": (store.CLAIM_SQL, "bench"),
        }
        results: dict[str, list[float]] = {k: [] for k in cases}
        for r in range(rounds + 1):
            for case, (sql, ns) in cases.items():
                async with pool.connection() as conn:
                    await conn.set_autocommit(True)
                    await conn.execute("VACUUM message")
                    await conn.set_autocommit(False)
                t = await one_pass(pool, cid, messages, sql, ns, camp.generated)
                if r:  # the first round warms up
                    results[case].append(t)
        await pool.close()
        slices = -(-messages // SLICE)
        base = statistics.median(results["without"])
        print(f"claim of {slices} slices of {SLICE} ({messages:,} messages), {rounds} rounds")
        for case, times in results.items():
            med = statistics.median(times)
            print(
                f"  {case:8s} {1000 * med / slices:7.3f} ms/slice  "
                f"{1e6 * med / messages:6.2f} us/message  ({med / base:4.2f}x)"
            )
    finally:
        pg.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--entries", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="claim-bench-") as d:
        asyncio.run(main(a.messages, a.entries, a.rounds, Path(d)))
