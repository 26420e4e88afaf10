"""Claims on message rows on a real Postgres: one live sender per message.

A claim is taken in the same statement that checks the row is pending, the
campaign active and no live sender holds it; only the claim's holder records
the outcome; a sender whose worker lease ran out loses its rows to another.
"""

from __future__ import annotations

import uuid

import psycopg
from harness import campaign_row

from notifq.core.db import open_pool
from notifq.operator import store as op_store
from notifq.operator import storing
from notifq.operator.sources import InlineRecipients
from notifq.worker import store
from notifq.worker.lease import WorkerLease


async def test_one_live_sender_per_message(database_url: str) -> None:
    pool = await open_pool(database_url)
    a, b = WorkerLease(pool, 10), WorkerLease(pool, 10)
    await a.renew()
    await b.renew()
    cid = uuid.uuid4()
    await storing.materialize(
        pool,
        campaign_row(cid, "mock"),
        InlineRecipients([f"u{i}@example.com" for i in range(20)]),
        state="active",
    )
    seqs = list(range(10))

    async def take(
        lease: WorkerLease, token: str, live: list[str], horizon: str = "~"
    ) -> list[int]:
        rows = await store.claim(
            pool,
            cid,
            seqs,
            token=token,
            owner=lease.id,
            live=live,
            horizon=horizon,
            lease_seconds=600,
            grace_seconds=0,
        )
        return [r.seq for r in rows]

    try:
        assert await take(a, "a1", [], horizon="a1") == seqs
        assert await take(b, "b1", []) == []  # a live worker holds them
        assert await take(a, "a2", ["a1"]) == []  # a running slice of the same worker holds them
        # a1 made after a2 began (above a2's horizon): never taken, running or not
        assert await take(a, "a2", [], horizon="a1") == []
        # the holder records; a stranger's write with another token changes nothing
        sent = [store.Write(s, "sent", None, "mock", None) for s in seqs[:5]]
        assert await store.write_once(pool, cid, "b1", sent) == 0
        assert await store.write_once(pool, cid, "a1", sent) == 5
        # a1's slice ended without writing the rest: a later slice of its worker takes them
        assert await take(a, "a3", [], horizon="a3") == seqs[5:]
        # worker a dies: its lease runs out, b may claim and send what a left
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE worker_lease SET expires_at = now() - interval '1 s' WHERE id = %s",
                (a.id,),
            )
        assert await take(b, "b2", []) == seqs[5:]
        late = [store.Write(s, "sent", None, "mock", None) for s in seqs[5:]]
        assert await store.write_once(pool, cid, "a3", late) == 0  # a woke up: not its rows
        # throttled answers do not spend an attempt; other outcomes do
        outcome = [
            store.Write(5, "pending", "Throttling", "mock", None, True),
            store.Write(6, "pending", "ServiceUnavailable", "mock", None),
        ]
        assert await store.write_once(pool, cid, "b2", outcome) == 2
        with psycopg.connect(database_url) as conn:
            attempts: dict[int, int] = dict(
                conn.execute(
                    "SELECT seq, attempts FROM message WHERE campaign_id = %s AND seq IN (5, 6)",
                    (cid,),
                ).fetchall()
            )
        assert attempts == {5: 0, 6: 1}
    finally:
        await a.stop()
        await b.stop()
        await pool.close()


async def test_cancel_stops_claims_and_a_send_in_flight_is_still_recorded(
    database_url: str,
) -> None:
    pool = await open_pool(database_url)
    lease = WorkerLease(pool, 10)
    await lease.renew()
    cid = uuid.uuid4()
    await storing.materialize(
        pool,
        campaign_row(cid, "mock"),
        InlineRecipients([f"u{i}@example.com" for i in range(10)]),
        state="active",
    )
    try:
        kw = {
            "owner": lease.id,
            "live": [],
            "horizon": "",
            "lease_seconds": 600,
            "grace_seconds": 0,
        }
        held = await store.claim(pool, cid, [0, 1], token="t1", **kw)  # type: ignore[arg-type]
        assert [r.seq for r in held] == [0, 1]
        await op_store.cancel(pool, cid)  # while 0 and 1 are with the provider
        assert await store.claim(pool, cid, [2, 3], token="t2", **kw) == []  # type: ignore[arg-type]
        writes = [
            store.Write(0, "sent", None, "mock", "id-0"),
            store.Write(1, "pending", "ServiceUnavailable", "mock", None),
        ]
        assert await store.write_once(pool, cid, "t1", writes) == 1
        counts = await op_store.counts(pool, cid)
        assert counts == {"pending": 0, "sent": 1, "failed": 0, "cancelled": 9, "suppressed": 0}
    finally:
        await lease.stop()
        await pool.close()
