"""Recording outcomes on a real Postgres when something other than the connection goes wrong.

The outbox keeps outcomes the database would not take in time and writes them once it
answers; one that the database refuses for good must not hold up the others. Texts from
providers reach Postgres whatever characters they hold.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
import testbed
from workerbed import claimed, one_chunk, statuses, store_campaign, worker

from notifq.core.db import open_pool
from notifq.worker import store
from notifq.worker.lease import WorkerLease
from notifq.worker.outbox import Outbox, Pending
from notifq.worker.providers.base import Outbound, Outcome
from notifq.worker.providers.mock import MockProvider


async def claim_all(pool: Any, lease: WorkerLease, cid: uuid.UUID, n: int) -> str:
    token = uuid.uuid4().hex
    rows = await store.claim(
        pool,
        cid,
        list(range(n)),
        token=token,
        owner=lease.id,
        live=[],
        horizon="",
        lease_seconds=600,
        grace_seconds=0,
    )
    assert len(rows) == n
    return token


async def test_an_outcome_the_database_refuses_does_not_block_the_outbox(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await open_pool(database_url, max_size=2)
    lease = WorkerLease(pool, 10)
    await lease.start()
    try:
        refused, fine = await store_campaign(pool, 3), await store_campaign(pool, 3)
        refused_token = await claim_all(pool, lease, refused, 3)
        fine_token = await claim_all(pool, lease, fine, 3)
        outbox = Outbox(pool)
        # first in line: a status the schema's CHECK refuses (a worker newer than its
        # database could write one); behind it, another campaign's good outcomes
        outbox.items.append(
            Pending(
                refused,
                refused_token,
                [store.Write(s, "bounced", None, "mock", None) for s in range(3)],
            )
        )
        outbox.items.append(
            Pending(
                fine, fine_token, [store.Write(s, "sent", None, "mock", f"id{s}") for s in range(3)]
            )
        )
        assert await outbox.flush()
        assert outbox.items == []
        assert await statuses(pool, fine) == {"sent": 3}
        # the refused outcomes are not recorded: their claim is given up, the rows sendable
        assert await statuses(pool, refused) == {"pending": 3}
        assert await claimed(pool, refused) == 0
        assert any(
            r.levelno == logging.ERROR and str(refused) in r.getMessage() for r in caplog.records
        )
    finally:
        await lease.stop()
        await pool.close()


class OddTexts(MockProvider):
    """The mock, but every send fails transiently with a text Postgres cannot store as is."""

    async def send_many(self, channel: str, messages: list[Outbound]) -> list[Outcome]:
        return [
            Outcome(m.seq, "transient", "ServiceUnavailable: bad\x00reply \udc80end")
            for m in messages
        ]


async def test_error_texts_with_nul_and_lone_surrogates_are_recorded(
    database_url: str, redis_server: testbed.Redis, tmp_path: Path
) -> None:
    n = 10
    async with worker(database_url, redis_server.url, tmp_path, OddTexts) as (processor, pool):
        chunk = await one_chunk(pool, n)
        done = await processor.process(chunk, chunk.start, last_attempt=False)
        assert done.counts["retry"] == n
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT status, attempts, last_error, claim_token FROM message "
                "WHERE campaign_id = %s",
                (chunk.campaign_id,),
            )
            assert await cur.fetchall() == [
                ("pending", 1, "ServiceUnavailable: badreply ?end", None)
            ]
