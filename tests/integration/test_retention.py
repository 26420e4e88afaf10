"""Retention on real Postgres: a campaign finished longer ago than the retention loses its
message rows by a partition drop (no DELETE), keeps its campaign row and counts, and a
bystander campaign that is still running keeps every row and can still be claimed."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from harness import campaign_row
from psycopg_pool import AsyncConnectionPool

from notifq.core import partitions
from notifq.core.db import open_pool
from notifq.operator import retention, store, storing
from notifq.operator.sources import GeneratedRecipients, InlineRecipients
from notifq.worker import store as worker_store
from notifq.worker.lease import WorkerLease


def conn_rows(database_url: str, cid: uuid.UUID) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM message WHERE campaign_id = %s", (cid,)).fetchone()
    return int(row[0]) if row else 0


async def claim(
    pool: AsyncConnectionPool, cid: uuid.UUID, seqs: list[int]
) -> list[worker_store.PendingRow]:
    """The rows ``seqs`` of ``cid`` as a worker claims them (a fresh worker's lease, the
    campaign as a worker reads it)."""
    lease = WorkerLease(pool, 10)
    await lease.renew()
    camp = await worker_store.CampaignCache(pool).get(cid)
    assert camp is not None
    return await worker_store.claim(
        pool,
        cid,
        seqs,
        token="t",
        owner=lease.id,
        live=[],
        horizon="",
        lease_seconds=60,
        grace_seconds=0,
        namespace=camp.namespace,
        generated=camp.generated,
    )


async def test_expired_rows_go_with_their_partition(database_url: str) -> None:
    pool = await open_pool(database_url)
    old, recent, running = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        for cid in (old, recent, running):
            src = InlineRecipients([f"r{i}@example.com" for i in range(50)])
            assert await storing.materialize(pool, campaign_row(cid), src, state="active") == 50
        await store.snapshot(pool, old, "Completed", 50, 0, True)
        await store.snapshot(pool, recent, "Completed", 50, 0, True)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE campaign SET finished_at = now() - interval '3 days' WHERE id = %s",
                (old,),
            )
        expired = await retention.expire(pool, days=2)
        assert old in expired and recent not in expired and running not in expired
        assert await retention.expire(pool, days=2) == []  # done once
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT to_regclass(%s)", (f"message_{old.hex}",)).fetchone() == (
                None,
            )
            row = conn.execute(
                "SELECT expired_at IS NOT NULL, sent_count, total FROM campaign WHERE id = %s",
                (old,),
            ).fetchone()
        assert row == (True, 50, 50)
        # the per-chunk counters stay: the campaign's final counts outlive its rows
        assert await store.counts(pool, old) == await store.counts(pool, recent)
        assert not conn_rows(database_url, old)
        assert (await store.counts(pool, recent))["pending"] == 50
        stored = await store.get(pool, old)
        assert stored is not None and stored.expired_at is not None
        # the bystander still works: its rows are there and can be claimed
        claimed = await claim(pool, running, list(range(10)))
        assert [r.seq for r in claimed] == list(range(10))
    finally:
        await pool.close()


async def test_worker_statements_read_one_partition(database_url: str) -> None:
    """EXPLAIN of the worker's fetch, claim and outcome write names only the campaign's own
    partition (pruned at planning), with an index scan."""
    pool = await open_pool(database_url)
    mine, other = uuid.uuid4(), uuid.uuid4()
    try:
        for cid in (mine, other):
            src = InlineRecipients([f"e{i}@example.com" for i in range(1000)])
            await storing.materialize(pool, campaign_row(cid), src, state="active")
        statements = {
            "fetch": (
                worker_store.FETCH_SQL,
                {"cid": mine, "start": 0, "end": 500, "limit": 500, "first": 3, "domain": "x"},
            ),
            "claim": (
                worker_store.CLAIM_SQL,
                {
                    "token": "t",
                    "owner": "o",
                    "lease": 60,
                    "cid": mine,
                    "seqs": [1, 2],
                    "lo": 1,
                    "hi": 2,
                    "live": [],
                    "horizon": "",
                    "grace": 0,
                    "ns": "ns",
                    "first": None,
                    "domain": None,
                },
            ),
            "write": (
                worker_store.UPDATE_SQL,
                ([1], ["sent"], [None], ["mock"], [None], [1], mine, 1, 1, "t"),
            ),
        }
        with psycopg.connect(database_url) as conn:
            conn.execute("ANALYZE message")
            for what, (sql, params) in statements.items():
                plan = "\n".join(
                    r[0]
                    for r in conn.execute("EXPLAIN " + sql, params).fetchall()  # type: ignore[call-overload]
                )
                assert f"message_{mine.hex}" in plan, (what, plan)
                assert f"message_{other.hex}" not in plan, (what, plan)
                assert "Seq Scan on message_" not in plan, (what, plan)
                print(f"{what}:\n{plan}")
    finally:
        await pool.close()


async def test_a_list_stored_in_ranges_is_claimed_across_them_and_expires_whole(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generated list written in parts is a table of ranges (one per part, and one for
    the include rows): attached with its indexes, claimed across a range boundary by a
    worker, and dropped whole by retention; a plain-table bystander keeps its rows."""
    monkeypatch.setattr(storing, "MIN_PART", 100)
    pool = await open_pool(database_url)
    ranged, bystander = uuid.uuid4(), uuid.uuid4()
    try:
        src = GeneratedRecipients(600, "example.org", ["a@company.com", "b@company.com"])
        checks = storing.Checks(parallel=2)
        assert (
            await storing.materialize(
                pool, campaign_row(ranged), src, state="active", checks=checks
            )
            == 602
        )
        listed = InlineRecipients([f"r{i}@example.com" for i in range(50)])
        assert await storing.materialize(pool, campaign_row(bystander), listed, state="active")
        table = f"message_{ranged.hex}"
        with psycopg.connect(database_url) as conn:
            leaves = [r[0] for r in conn.execute(partitions.LEAVES, (table,)).fetchall()]
            keys = conn.execute(
                "SELECT conname FROM pg_constraint WHERE contype = 'p' AND conname LIKE %s "
                "ORDER BY 1",
                (f"pk_{ranged.hex}%",),
            ).fetchall()
        assert leaves == [f"{table}_{i}" for i in range(3)]
        assert [k[0] for k in keys] == [f"pk_{ranged.hex}"] + [
            f"pk_{ranged.hex}_{i}" for i in range(3)
        ]
        # ranges: [0, 2) [2, 302) [302, 602)
        claimed = await claim(pool, ranged, list(range(295, 310)))
        assert [(r.seq, r.recipient) for r in claimed] == [
            (s, f"user{s - 2}@example.org") for s in range(295, 310)
        ]
        await store.snapshot(pool, ranged, "Completed", 602, 0, True)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE campaign SET finished_at = now() - interval '3 days' WHERE id = %s",
                (ranged,),
            )
        assert ranged in await retention.expire(pool, days=2)
        with psycopg.connect(database_url) as conn:
            gone = conn.execute(
                "SELECT count(*) FROM pg_class WHERE relname LIKE %s", (f"%{ranged.hex}%",)
            ).fetchone()
        assert gone == (0,)
        assert not conn_rows(database_url, ranged)
        assert conn_rows(database_url, bystander) == 50
    finally:
        await pool.close()
