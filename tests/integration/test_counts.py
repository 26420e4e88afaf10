"""Per-chunk counters on a real Postgres: every writer of message rows keeps them equal
to the rows, in its own transaction, and reads of counts never need the rows.

Walks one campaign through each kind of write (COPY, the worker's claim and outcome
writes, transient failures, cancel, retry-failed, giving a chunk up, a tombstone, a
rolled-back write, a delete) next to a bystander campaign whose counters must not move.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import psycopg
from harness import assert_counters_match, campaign_row
from psycopg_pool import AsyncConnectionPool

from notifq.api import store as api_store
from notifq.core.db import open_pool
from notifq.operator import store as op_store
from notifq.operator import storing
from notifq.operator.sources import InlineRecipients
from notifq.worker import store


async def _send(
    pool: AsyncConnectionPool, cid: uuid.UUID, outcomes: dict[int, tuple[str, bool]]
) -> int:
    """Claim ``outcomes``'s seqs and record (status, throttled) for each, as a worker."""
    token = uuid.uuid4().hex
    rows = await store.claim(
        pool,
        cid,
        sorted(outcomes),
        token=token,
        owner="w",
        live=[],
        horizon="",
        lease_seconds=60,
        grace_seconds=0,
    )
    assert [r.seq for r in rows] == sorted(outcomes)
    writes = [
        store.Write(seq, status, None if status == "sent" else "boom", "mock", None, throttled)
        for seq, (status, throttled) in sorted(outcomes.items())
    ]
    return await store.write_once(pool, cid, token, writes)


async def test_counters_follow_every_write(database_url: str) -> None:
    pool = await open_pool(database_url)
    cid, other = uuid.uuid4(), uuid.uuid4()
    entries = [f"u{i}@example.com" for i in range(9)] + ["bad-address"]  # seq 9 fails at once
    try:
        # chunks of 4: [0, 4), [4, 8), [8, 10)
        row = replace(campaign_row(cid), chunk_size=4)
        assert await storing.materialize(pool, row, InlineRecipients(entries), state="active") == 10
        await storing.materialize(
            pool, campaign_row(other), InlineRecipients(["x@example.com"] * 3), state="active"
        )
        assert_counters_match(database_url)
        assert await op_store.counts(pool, cid) == {
            "pending": 9,
            "sent": 0,
            "failed": 1,
            "cancelled": 0,
            "suppressed": 0,
        }
        assert await op_store.pending_chunks(pool, cid) == [0, 1, 2]
        backlog = await op_store.backlog(pool)
        assert backlog >= 12  # this campaign's 9 and the bystander's 3 (and others' rows)

        # a worker: three sent, one transient failure (back to pending, attempted), one
        # throttled (pending, no attempt spent); a claim alone changes no count
        assert (
            await _send(
                pool,
                cid,
                {
                    0: ("sent", False),
                    1: ("sent", False),
                    2: ("sent", False),
                    3: ("pending", False),
                    4: ("pending", True),
                },
            )
            == 5
        )
        assert_counters_match(database_url)
        assert await api_store.progress(pool, cid) == {
            "pending": 5,
            "queued": 1,
            "sent": 3,
            "failed": 1,
            "cancelled": 0,
            "suppressed": 0,
        }
        assert await _send(pool, cid, {3: ("failed", False)}) == 1  # its last attempt
        assert await op_store.pending_chunks(pool, cid) == [1, 2]
        assert await op_store.backlog(pool) == backlog - 4

        # retry-failed: the failed one that may succeed is pending again (not seq 9)
        assert await op_store.retry_failed(pool, cid) == 1
        assert_counters_match(database_url)
        assert await op_store.pending_chunks(pool, cid) == [0, 1, 2]

        # a chunk given up by the sweep, then a rolled-back write: no count moves on
        # the rollback
        assert await op_store.fail_pending(pool, cid, 8, 12, "job failed") == 1
        async with pool.connection() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE message SET status = 'sent' WHERE campaign_id = %s", (cid,)
                    )
                    raise RuntimeError("rolled back")
            except RuntimeError:
                pass
        assert_counters_match(database_url)
        assert (await op_store.counts(pool, cid))["failed"] == 2

        # cancel, then a send the provider accepted before the cancel is still recorded
        token = uuid.uuid4().hex
        await store.claim(
            pool,
            cid,
            [5],
            token=token,
            owner="w",
            live=[],
            horizon="",
            lease_seconds=60,
            grace_seconds=0,
        )
        assert await op_store.cancel(pool, cid) == 5
        sent = [store.Write(5, "sent", None, "mock", None)]
        assert await store.write_once(pool, cid, token, sent) == 1
        assert_counters_match(database_url)
        assert await op_store.counts(pool, cid) == {
            "pending": 0,
            "sent": 4,
            "failed": 2,
            "cancelled": 4,
            "suppressed": 0,
        }
        # the tombstone of a deleted campaign (nothing pending is left to cancel)
        assert (await op_store.tombstone(pool, cid, "ns", "c", 4))[0] == 0
        assert await op_store.pending_chunks(pool, cid) == []

        # rows deleted (by hand, or with their campaign): their counts go too
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM message WHERE campaign_id = %s AND seq < 4", (cid,))
        assert_counters_match(database_url)
        assert sum((await op_store.counts(pool, cid)).values()) == 6

        # the bystander never moved
        assert await op_store.counts(pool, other) == {
            "pending": 3,
            "sent": 0,
            "failed": 0,
            "cancelled": 0,
            "suppressed": 0,
        }
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM campaign WHERE id = %s", (cid,))
            left = conn.execute(
                "SELECT count(*) FROM message_count WHERE campaign_id = %s", (cid,)
            ).fetchone()
        assert left == (0,)
        assert_counters_match(database_url)
    finally:
        await pool.close()
