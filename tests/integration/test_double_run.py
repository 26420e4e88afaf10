"""One chunk processed twice at once by the same worker process: each message is sent once.

BullMQ delivers a job at least once: a job whose lock was not renewed in time (the
worker's event loop stalled past the lock, or a renewal failed) is moved back to wait
and may be taken again, by another worker or by the same one, while its first run is
still sending. The claims in Postgres must make that harmless. Here two runs of one
chunk go through one real ``ChunkProcessor`` (real Postgres, real Redis, the mock
provider logging each accepted send) side by side, in lockstep.

And the other side of the same rule: rows a slice of this process claimed and then
left (an error between claim and write) are claimed again by its next run, at once.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import testbed
from workerbed import claimed, one_chunk, sends, statuses, store_campaign, worker

from notifq.core.jobs import chunk_of
from notifq.worker.providers.base import Outbound, Outcome
from notifq.worker.providers.mock import MockProvider

N = 400
RUNS = 4


class FailsOnce(MockProvider):
    """The mock, but its first batch raises (a bug, an unexpected library error)."""

    failed = False

    async def send_many(self, channel: str, messages: list[Outbound]) -> list[Outcome]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("unexpected")
        return await super().send_many(channel, messages)


class AnswersHalfOnce(MockProvider):
    """The mock, but for its first batch it sends and answers only the first half."""

    halved = False

    async def send_many(self, channel: str, messages: list[Outbound]) -> list[Outcome]:
        if not self.halved:
            self.halved = True
            messages = messages[: len(messages) // 2]
        return await super().send_many(channel, messages)


async def test_two_runs_of_one_chunk_send_each_message_once(
    database_url: str, redis_server: testbed.Redis, tmp_path: Path
) -> None:
    async with worker(database_url, redis_server.url, tmp_path) as (processor, pool):
        cid = await store_campaign(pool, N)
        chunk = chunk_of(cid, 0, N, N)
        runs = await asyncio.gather(
            *(processor.process(chunk, chunk.start, last_attempt=False) for _ in range(RUNS))
        )
        # whatever one run did not send, another did: every row is sent, once
        assert await statuses(pool, cid) == {"sent": N}
        sent = sends(tmp_path)
        assert len(sent) == N
        twice = {r: n for r, n in sent.items() if n > 1}
        assert not twice, f"{len(twice)} recipients sent more than once"
        assert sum(r.counts["sent"] for r in runs) == N


async def test_rows_left_claimed_by_a_failed_slice_are_sent_by_the_next_run(
    database_url: str, redis_server: testbed.Redis, tmp_path: Path
) -> None:
    n = 30
    async with worker(database_url, redis_server.url, tmp_path, FailsOnce) as (processor, pool):
        cid = await store_campaign(pool, n)
        chunk = chunk_of(cid, 0, n, n)
        try:
            await processor.process(chunk, chunk.start, last_attempt=False)
            raise AssertionError("the first run should have raised")
        except RuntimeError:
            pass
        assert await claimed(pool, cid) == 10  # the failed slice's rows: still claimed
        # the job's next run (BullMQ retries it) takes them at once, not after the lease
        done = await processor.process(chunk, chunk.start, last_attempt=False)
        assert done.counts["sent"] == n
        assert await statuses(pool, cid) == {"sent": n}
        assert sorted(sends(tmp_path).values()) == [1] * n


async def test_messages_a_provider_did_not_answer_are_named_and_sent_by_the_next_run(
    database_url: str, redis_server: testbed.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = 10  # one slice
    mock = AnswersHalfOnce
    async with worker(database_url, redis_server.url, tmp_path, mock) as (processor, pool):
        chunk = await one_chunk(pool, n)
        first = await processor.process(chunk, chunk.start, last_attempt=False)
        assert first.counts["sent"] == n // 2
        assert await claimed(pool, chunk.campaign_id) == n // 2  # unanswered: left claimed
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(
            str(chunk.campaign_id) in w and f"chunk {chunk.chunk}" in w and "5 of 10" in w
            for w in warned
        ), warned
        # the operator's sweep gives the chunk a job again: this worker takes its own leftover
        # claims at once (the horizon rule)
        second = await processor.process(chunk, chunk.start, last_attempt=False)
        assert second.counts["sent"] == n // 2
        assert await statuses(pool, chunk.campaign_id) == {"sent": n}
    assert sorted(sends(tmp_path).values()) == [1] * n
