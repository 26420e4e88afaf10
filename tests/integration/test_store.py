"""Operator storage on real Postgres: COPY materialization is atomic and repeatable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from notifq.core.db import open_pool
from notifq.core.recipients import INVALID_ADDRESS
from notifq.operator import store


def _row(cid: uuid.UUID) -> store.CampaignRow:
    return store.CampaignRow(
        id=cid,
        namespace="ns",
        name=f"c-{cid.hex[:6]}",
        channel="email",
        provider="auto",
        subject="s",
        body="b",
        max_attempts=4,
        backoff_ms=1000,
        chunk_size=100,
    )


async def test_materialize_is_idempotent_and_validates(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        entries = ["a@example.com", "tab\there@example.com", "bad-address", "c@example.com"]
        assert await store.materialize(pool, _row(cid), entries, validate=True) == 4
        # a repeat (operator restarted) adds nothing
        assert await store.materialize(pool, _row(cid), entries, validate=True) == 4
        counts = await store.counts(pool, cid)
        assert counts == {"pending": 2, "sent": 0, "failed": 2, "cancelled": 0}
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT seq, recipient, status, last_error FROM message "
                "WHERE campaign_id = %s ORDER BY seq",
                (cid,),
            ).fetchall()
        assert rows[1][1] == "tab\there@example.com"
        assert rows[2][2:] == ("failed", INVALID_ADDRESS)
        assert await store.pending_chunks(pool, cid, 2) == [0, 1]
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
            await store.materialize(pool, _row(cid), boom(), validate=False)
        assert await store.get(pool, cid) is None
        assert (
            await store.materialize(pool, _row(cid), iter(["a@example.com"]), validate=False) == 1
        )
    finally:
        await pool.close()


async def test_cancel_and_retry_failed(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        await store.materialize(
            pool, _row(cid), [f"u{i}@example.com" for i in range(10)], validate=True
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
