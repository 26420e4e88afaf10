"""Recording outcomes on a real Postgres when something other than the connection goes wrong.

The outbox keeps outcomes the database would not take in time and writes them once it
answers; one that the database refuses for good must not hold up the others. Texts from
providers reach Postgres whatever characters they hold.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import testbed
from redis.asyncio import Redis
from workerbed import claimed, one_chunk, sends, statuses, store_campaign, worker

from notifq.core.db import open_pool
from notifq.core.errors import OutcomesRefused
from notifq.core.settings import WorkerSettings
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


class BreaksWindows(MockProvider):
    """The mock, but once it accepted a batch the campaign's quota window in Redis is no
    longer a sorted set: the bookkeeping after the send gets a real Redis error."""

    def __init__(self, settings: WorkerSettings) -> None:
        super().__init__(settings)
        self.prefix = settings.queue_prefix
        self.redis = Redis.from_url(settings.redis_url)

    async def send_many(self, channel: str, messages: list[Outbound]) -> list[Outcome]:
        out = await super().send_many(channel, messages)
        key = f"{self.prefix}:quota:w:c:{messages[0].campaign}"
        await self.redis.delete(key)
        await self.redis.set(key, "not a window")
        return out

    async def close(self) -> None:
        await super().close()
        await self.redis.aclose()


async def test_a_redis_error_after_a_paced_send_does_not_keep_its_outcomes_from_the_rows(
    database_url: str, redis_server: testbed.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = 4  # one slice under the campaign's rate limit
    async with worker(database_url, redis_server.url, tmp_path, BreaksWindows) as (processor, pool):
        chunk = await one_chunk(pool, n, rate_limit=100)
        done = await processor.process(chunk, chunk.start, last_attempt=False)
        assert done.counts["sent"] == n
        assert await statuses(pool, chunk.campaign_id) == {"sent": n}
    assert sorted(sends(tmp_path).values()) == [1] * n
    assert any(
        r.levelno == logging.WARNING and "WRONGTYPE" in r.getMessage() for r in caplog.records
    )


@asynccontextmanager
async def trigger_on_sent(pool: Any, cid: uuid.UUID, body: str) -> AsyncIterator[None]:
    """A row trigger with ``body`` (PL/pgSQL) on the campaign's rows set to ``sent``: the
    database itself answers the outcome write with an error. ``{seq}`` in ``body`` names a
    sequence of the trigger's own."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    async with pool.connection() as conn:
        await conn.execute(f"CREATE SEQUENCE {name}")
        await conn.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {body.replace('{seq}', name)} RETURN NEW; END $$"
        )
        await conn.execute(
            f"CREATE TRIGGER {name} BEFORE UPDATE ON message FOR EACH ROW "
            f"WHEN (NEW.campaign_id = '{cid}' AND NEW.status = 'sent') "
            f"EXECUTE FUNCTION {name}()"
        )
    try:
        yield
    finally:
        async with pool.connection() as conn:
            await conn.execute(f"DROP TRIGGER {name} ON message")
            await conn.execute(f"DROP FUNCTION {name}()")
            await conn.execute(f"DROP SEQUENCE {name}")


@pytest.mark.parametrize(
    ("errcode", "passes"),
    [
        ("deadlock_detected", True),
        ("check_violation", False),
        ("program_limit_exceeded", False),  # an OperationalError that does not pass
    ],
)
async def test_an_error_answered_to_the_outcome_write_after_a_send(
    database_url: str,
    redis_server: testbed.Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    errcode: str,
    passes: bool,
) -> None:
    """A deadlock (answered once) is written again; an error that does not pass is logged at
    ERROR and the claim released: the rows are neither recorded nor held."""
    n = 10
    raised = "nextval('{seq}') = 1" if passes else "true"
    body = f"IF {raised} THEN RAISE EXCEPTION 'refused (test)' USING ERRCODE = '{errcode}'; END IF;"
    async with worker(database_url, redis_server.url, tmp_path) as (processor, pool):
        chunk = await one_chunk(pool, n)
        cid = chunk.campaign_id
        async with trigger_on_sent(pool, cid, body):
            if passes:
                done = await processor.process(chunk, chunk.start, last_attempt=False)
                assert done.counts["sent"] == n
            else:
                # the job's attempt fails: not given back as for an unreachable database
                with pytest.raises(OutcomesRefused):
                    await processor.process(chunk, chunk.start, last_attempt=False)
        assert await statuses(pool, cid) == {"sent" if passes else "pending": n}
        assert await claimed(pool, cid) == 0
    assert sorted(sends(tmp_path).values()) == [1] * n
    logged = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert any("refused (test)" in text for _, text in logged)
    assert any(level == logging.ERROR and str(cid) in text for level, text in logged) != passes
