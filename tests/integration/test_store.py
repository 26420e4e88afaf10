"""Operator storage on real Postgres: COPY materialization is atomic and repeatable,
stores the state the spec asks for, and a deletion wins over storing at any moment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from harness import campaign_row

from notifq.core.db import open_pool
from notifq.core.recipients import CONTROL_CHARACTER, INVALID_ADDRESS
from notifq.operator import store


async def test_materialize_is_idempotent_and_validates(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        entries = [
            "a@example.com",
            "tab\there@example.com",
            "bad-address",
            "c@example.com",
            "nul\x00@example.com",
        ]
        assert (
            await store.materialize(pool, campaign_row(cid), entries, validate=True, state="active")
            == 5
        )
        # a repeat (operator restarted) adds nothing
        assert (
            await store.materialize(pool, campaign_row(cid), entries, validate=True, state="active")
            == 5
        )
        counts = await store.counts(pool, cid)
        assert counts == {"pending": 2, "sent": 0, "failed": 3, "cancelled": 0}
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT seq, recipient, status, last_error FROM message "
                "WHERE campaign_id = %s ORDER BY seq",
                (cid,),
            ).fetchall()
        # control characters: stored visibly (Postgres text holds no NUL), failed at once
        assert rows[1][1:] == ("tab\\x09here@example.com", "failed", CONTROL_CHARACTER)
        assert rows[4][1:] == ("nul\\x00@example.com", "failed", CONTROL_CHARACTER)
        assert rows[2][2:] == ("failed", INVALID_ADDRESS)
        assert await store.pending_chunks(pool, cid) == [0]  # chunks of 100: one
    finally:
        await pool.close()


async def test_failed_materialization_leaves_nothing(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()

        def boom() -> Iterator[str]:
            yield "a@example.com"
            raise RuntimeError("operator died mid-COPY")

        with pytest.raises(RuntimeError):
            await store.materialize(pool, campaign_row(cid), boom(), validate=False, state="active")
        assert await store.get(pool, cid) is None
        assert (
            await store.materialize(
                pool, campaign_row(cid), iter(["a@example.com"]), validate=False, state="active"
            )
            == 1
        )
    finally:
        await pool.close()


async def test_cancel_and_retry_failed(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        await store.materialize(
            pool,
            campaign_row(cid),
            [f"u{i}@example.com" for i in range(10)],
            validate=True,
            state="active",
        )
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE message SET status = 'failed', attempts = 4, last_error = 'x' "
                "WHERE campaign_id = %s AND seq < 3",
                (cid,),
            )
        assert await store.retry_failed(pool, cid) == 3
        assert (await store.counts(pool, cid))["pending"] == 10
        assert await store.cancel(pool, cid) == 10
        assert (await store.counts(pool, cid))["cancelled"] == 10
        assert not await store.set_state(pool, cid, "active")  # never out of cancelled
    finally:
        await pool.close()


async def test_stored_in_the_state_asked_and_locked_for_enqueue(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        assert (
            await store.materialize(
                pool, campaign_row(cid), ["a@example.com"], validate=True, state="suspended"
            )
            == 1
        )
        async with store.locked_state(pool, cid) as state:
            assert state == "suspended"
        async with store.locked_state(pool, uuid.uuid4()) as state:
            assert state is None
    finally:
        await pool.close()


async def test_deleted_before_storing_copies_nothing(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        assert await store.tombstone(pool, cid, "ns", "gone", 100) == (0, 0, 100)
        assert (
            await store.materialize(
                pool, campaign_row(cid), ["a@example.com"], validate=True, state="active"
            )
            is None
        )
        assert await store.counts(pool, cid) == {
            "pending": 0,
            "sent": 0,
            "failed": 0,
            "cancelled": 0,
        }
        stored = await store.get(pool, cid)
        assert stored is not None and stored.state == "cancelled"
    finally:
        await pool.close()


async def test_deleted_while_storing_cancels_what_was_stored(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        # the tombstone waits for the storing transaction, then cancels its rows
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO campaign (id, namespace, name, channel, provider, subject, body, "
                "max_attempts, backoff_ms, chunk_size, total, state, phase, sent_count, "
                "failed_count) VALUES (%s, 'ns', 'x', 'email', 'auto', '', '', 4, 1000, 100, 0, "
                "'active', 'Pending', 0, 0)",
                (cid,),
            )
            tomb = asyncio.create_task(store.tombstone(pool, cid, "ns", "x", 100))
            await asyncio.sleep(0.3)
            assert not tomb.done()  # waits for the uncommitted row
            await conn.execute(
                "INSERT INTO message (campaign_id, seq, recipient, status) "
                "SELECT %s, g, 'u' || g || '@example.com', 'pending' FROM generate_series(0, 4) g",
                (cid,),
            )
            await conn.execute(
                "UPDATE campaign SET total = 5, materialized_at = now() WHERE id = %s", (cid,)
            )
        assert await tomb == (5, 5, 100)
        assert (await store.counts(pool, cid))["cancelled"] == 5
        async with store.locked_state(pool, cid) as state:
            assert state == "cancelled"  # so no job is ever added
    finally:
        await pool.close()
