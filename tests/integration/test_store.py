"""Operator storage on real Postgres: storing in batches shows nothing until the whole list
is stored, resumes after a crash without duplicates, stores the state the spec asks for,
and a deletion wins over storing at any moment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from harness import campaign_row, messages_in_order

from notifq.core import partitions, queries
from notifq.core.db import open_pool
from notifq.core.recipients import CONTROL_CHARACTER, INVALID_ADDRESS
from notifq.operator import store, storing
from notifq.operator.batches import Batch, Listed
from notifq.operator.sources import GeneratedRecipients, InlineRecipients


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
            await storing.materialize(
                pool, campaign_row(cid), InlineRecipients(entries), state="active"
            )
            == 5
        )
        # a repeat (operator restarted) adds nothing
        assert (
            await storing.materialize(
                pool, campaign_row(cid), InlineRecipients(entries), state="active"
            )
            == 5
        )
        counts = await store.counts(pool, cid)
        assert counts == {"pending": 2, "sent": 0, "failed": 3, "cancelled": 0, "suppressed": 0}
        rows = messages_in_order(database_url, cid, "recipient", "status", "last_error")
        # control characters: stored visibly (Postgres text holds no NUL), failed at once
        assert rows[1][1:] == ("tab\\x09here@example.com", "failed", CONTROL_CHARACTER)
        assert rows[4][1:] == ("nul\\x00@example.com", "failed", CONTROL_CHARACTER)
        assert rows[2][2:] == ("failed", INVALID_ADDRESS)
        assert await store.pending_chunks(pool, cid) == [0]  # chunks of 100: one
    finally:
        await pool.close()


class Dying:
    """A list source whose reader dies after ``die_after`` batches (the operator killed
    mid-store); it records where each run started."""

    def __init__(self, entries: list[str], size: int, die_after: int | None) -> None:
        self.entries, self.size, self.die_after = entries, size, die_after
        self.starts: list[int] = []

    async def batches(self, start: int, offset: int) -> AsyncIterator[Batch]:
        self.starts.append(start)
        for n, i in enumerate(range(start, len(self.entries), self.size)):
            if n == self.die_after:
                raise RuntimeError("operator died mid-store")
            yield Listed(self.entries[i : i + self.size], validate=True, offset=i + self.size)


async def test_a_failed_store_shows_nothing_and_resumes_without_duplicates(
    database_url: str,
) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        entries = [f"u{i}@example.com" for i in range(25)]
        src = Dying(entries, 10, die_after=2)
        with pytest.raises(RuntimeError):
            await storing.materialize(pool, campaign_row(cid), src, state="active")
        stored = await store.get(pool, cid)
        assert stored is not None and stored.materialized_at is None
        assert sum((await store.counts(pool, cid)).values()) == 0  # not attached: unseen
        src.die_after = None
        assert await storing.materialize(pool, campaign_row(cid), src, state="active") == 25
        assert src.starts == [0, 20]  # two batches were committed before it died
        rows = messages_in_order(database_url, cid, "recipient")
        assert rows == list(enumerate(entries))
    finally:
        await pool.close()


async def test_a_half_stored_list_of_a_deleted_campaign_is_dropped(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        src = Dying([f"u{i}@example.com" for i in range(25)], 10, die_after=1)
        with pytest.raises(RuntimeError):  # the operator died; the resource was deleted
            await storing.materialize(pool, campaign_row(cid), src, state="active")
        assert await store.tombstone(pool, cid, "ns", "x", 100) == (0, 0, 100)
        await storing.discard(pool, cid)
        with psycopg.connect(database_url) as conn:
            table = conn.execute("SELECT to_regclass(%s)", (f"message_{cid.hex}",)).fetchone()
        assert table == (None,)
        # an attached (stored) campaign keeps its rows, cancelled
        kept = uuid.uuid4()
        src = Dying([f"k{i}@example.com" for i in range(5)], 10, die_after=None)
        assert await storing.materialize(pool, campaign_row(kept), src, state="active") == 5
        await store.tombstone(pool, kept, "ns", "y", 100)
        await storing.discard(pool, kept)
        assert (await store.counts(pool, kept))["cancelled"] == 5
    finally:
        await pool.close()


async def test_generated_rows_are_made_by_postgres(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        src = GeneratedRecipients(1000, "example.org", ["first@company.com", "bad"])
        assert await storing.materialize(pool, campaign_row(cid), src, state="active") == 1002
        rows = messages_in_order(database_url, cid, "recipient", "status")
        rows = [r for r in rows if r[0] in (0, 1, 2, 1001)]
        assert rows == [
            (0, "first@company.com", "pending"),
            (1, "bad", "failed"),
            (2, "user0@example.org", "pending"),
            (1001, "user999@example.org", "pending"),
        ]
        # stored: the include rows' addresses; the generated rows' are computed from the
        # seq and what the campaign row records
        with psycopg.connect(database_url) as conn:
            stored = conn.execute(
                "SELECT count(*) FILTER (WHERE recipient IS NULL), count(recipient) "
                "FROM message WHERE campaign_id = %s",
                (cid,),
            ).fetchone()
            generated = conn.execute(
                "SELECT generated_from, generated_domain FROM campaign WHERE id = %s", (cid,)
            ).fetchone()
        assert stored == (1000, 2)
        assert generated == (2, "example.org")
    finally:
        await pool.close()


def assert_whole(database_url: str, cid: uuid.UUID, bystander: uuid.UUID) -> None:
    """Campaign ``cid`` holds its include row and its 1,000 generated ones, each once and
    in order; the bystander its 150 listed ones; the counters of both equal their rows."""
    assert messages_in_order(database_url, cid, "recipient") == [(0, "first@company.com")] + [
        (i + 1, f"user{i}@example.org") for i in range(1000)
    ]
    assert messages_in_order(database_url, bystander, "recipient") == [
        (i, f"u{i}@example.com") for i in range(150)
    ]
    with psycopg.connect(database_url) as conn:
        bad = conn.execute(queries.COUNTER_MISMATCHES).fetchall()
    assert [r for r in bad if r[0] in (cid, bystander)] == []


async def test_a_generated_list_is_written_in_parts_at_once_and_a_cut_batch_redone(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generated batch is written as several statements on several connections. A part
    that fails after the others committed leaves their rows without the batch's record;
    the next attempt deletes them and writes the batch again: every row once, in order.
    A listed campaign stored at the same time is untouched."""
    monkeypatch.setattr(storing, "MIN_PART", 100)
    checks = storing.Checks(parallel=3)
    pool = await open_pool(database_url)
    try:
        cid, bystander = uuid.uuid4(), uuid.uuid4()
        src = GeneratedRecipients(1000, "example.org", ["first@company.com"])
        table = f"message_{cid.hex}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            # the table materialize makes: a range for the include row, one per part
            conn.execute(partitions.create(cid, storing._splits(src, 3)))
            # the first part (rows 1-333, written in the batch's transaction) fails
            conn.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT boom CHECK (seq = 0 OR seq > 333)')
        with pytest.raises(psycopg.errors.CheckViolation):
            await storing.materialize(pool, campaign_row(cid), src, state="active", checks=checks)
        with psycopg.connect(database_url, autocommit=True) as conn:
            left = conn.execute(f'SELECT min(seq), count(*) FROM "{table}"').fetchone()
            conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT boom')
        # the include row's batch is recorded; the other two parts of the generated one
        # committed without their record
        assert left == (0, 1 + 1001 - 334)
        listed = InlineRecipients([f"u{i}@example.com" for i in range(150)])
        totals = await asyncio.gather(
            storing.materialize(pool, campaign_row(cid), src, state="active", checks=checks),
            storing.materialize(pool, campaign_row(bystander), listed, state="active"),
        )
        assert list(totals) == [1001, 150]
        assert_whole(database_url, cid, bystander)
        with psycopg.connect(database_url) as conn:
            leaves = conn.execute(partitions.LEAVES, (table,)).fetchall()
            sizes = conn.execute(
                f'SELECT tableoid::regclass::text, count(*) FROM "{table}" GROUP BY 1 ORDER BY 1'
            ).fetchall()
        assert sizes == [
            (f"{table}_0", 1),
            (f"{table}_1", 333),
            (f"{table}_2", 333),
            (f"{table}_3", 334),
        ]
        assert [r[0] for r in leaves] == [r[0] for r in sizes]
    finally:
        await pool.close()


async def test_a_failure_making_the_text_fails_every_part_and_the_batch_is_redone(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement that makes a generated batch's text fails after two of its three
    parts were fed: every part's COPY is abandoned (none commits what it had as if it
    were whole, none waits for text that never comes); the next attempt writes every
    row once. A listed campaign stored at the same time is untouched."""
    monkeypatch.setattr(storing, "MIN_PART", 100)
    good = storing.GENERATE
    assert "SELECT k.part, (SELECT string_agg(" in good
    monkeypatch.setattr(  # division by zero (at run time) making the last part's block
        storing,
        "GENERATE",
        good.replace(
            "SELECT k.part, (SELECT string_agg(",
            "SELECT k.part, (SELECT CASE WHEN k.lo >= 667 THEN (1 / (k.lo - k.lo))::text "
            "ELSE '' END || string_agg(",
        ),
    )
    checks = storing.Checks(parallel=3)
    pool = await open_pool(database_url)
    try:
        cid, bystander = uuid.uuid4(), uuid.uuid4()
        src = GeneratedRecipients(1000, "example.org", ["first@company.com"])
        listed = InlineRecipients([f"u{i}@example.com" for i in range(150)])
        failed, stored = await asyncio.gather(
            storing.materialize(pool, campaign_row(cid), src, state="active", checks=checks),
            storing.materialize(pool, campaign_row(bystander), listed, state="active"),
            return_exceptions=True,
        )
        assert isinstance(failed, psycopg.errors.DivisionByZero), failed
        assert stored == 150
        with psycopg.connect(database_url) as conn:
            left = conn.execute(f'SELECT seq FROM "message_{cid.hex}" ORDER BY 1').fetchall()
        assert left == [(0,)]  # the include row's batch, recorded; no generated row
        monkeypatch.setattr(storing, "GENERATE", good)
        assert (
            await storing.materialize(pool, campaign_row(cid), src, state="active", checks=checks)
            == 1001
        )
        assert_whole(database_url, cid, bystander)
    finally:
        await pool.close()


@pytest.mark.parametrize(
    ("count", "include"), [(1000, ["a@company.com", "bad", "c@x.org"]), (250, [])]
)
async def test_generated_counters_are_computed_and_equal_the_rows(
    database_url: str, count: int, include: list[str]
) -> None:
    """A generated list's counters are computed, not counted; they equal the rows in every
    chunk (the include rows, one invalid, counted; chunks cut across the boundary). A
    listed campaign stored beside it is counted row by row as before."""
    pool = await open_pool(database_url)
    try:
        cid, bystander = uuid.uuid4(), uuid.uuid4()
        src = GeneratedRecipients(count, "example.org", include)
        total = count + len(include)
        assert await storing.materialize(pool, campaign_row(cid), src, state="active") == total
        listed = InlineRecipients([f"u{i}@example.com" for i in range(150)] + ["nope"])
        assert await storing.materialize(pool, campaign_row(bystander), listed, state="active")
        with psycopg.connect(database_url) as conn:
            bad = conn.execute(queries.COUNTER_MISMATCHES).fetchall()
            chunks = conn.execute(
                "SELECT count(*) FROM message_count WHERE campaign_id = %s", (cid,)
            ).fetchone()
        assert [r for r in bad if r[0] in (cid, bystander)] == []
        assert chunks == (-(-total // 100),)
        failed = 1 if "bad" in include else 0
        assert await store.counts(pool, cid) == {
            "pending": total - failed,
            "sent": 0,
            "failed": failed,
            "cancelled": 0,
            "suppressed": 0,
        }
        assert (await store.counts(pool, bystander))["failed"] == 1
    finally:
        await pool.close()


async def test_an_index_built_before_a_crash_is_kept_and_the_rest_built(
    database_url: str,
) -> None:
    """The primary key is a unique index, then a constraint made of it: an operator killed
    between the two finds the index there (an older operator's table, without the
    default campaign or the failed-status index, is brought up to date), adds the key,
    and the table attaches with the campaign's rows."""
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(partitions.create(cid))
            conn.execute(partitions.index(cid))  # what the crash left (empty table)
        src = GeneratedRecipients(700, "example.org", [])
        assert await storing.materialize(pool, campaign_row(cid), src, state="active") == 700
        with psycopg.connect(database_url) as conn:
            keys = conn.execute(
                "SELECT count(*) FROM pg_constraint WHERE conname = %s AND contype = 'p'",
                (f"pk_{cid.hex}",),
            ).fetchone()
            n = conn.execute("SELECT count(*) FROM message WHERE campaign_id = %s", (cid,))
            assert keys == (1,) and n.fetchone() == (700,)
            indexes = conn.execute(
                "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass",
                (partitions.name(cid),),
            ).fetchone()
            default = conn.execute(
                "SELECT count(*) FROM pg_attrdef d JOIN pg_attribute a "
                "ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
                "WHERE d.adrelid = %s::regclass AND a.attname = 'campaign_id'",
                (partitions.name(cid),),
            ).fetchone()
        assert indexes == (2,)  # the primary key and the failed-status index, once each
        assert default == (0,)  # settled before the attach
        assert (await store.counts(pool, cid))["pending"] == 700
    finally:
        await pool.close()


async def test_cancel_and_retry_failed(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        await storing.materialize(
            pool,
            campaign_row(cid),
            InlineRecipients([f"u{i}@example.com" for i in range(10)]),
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
            await storing.materialize(
                pool, campaign_row(cid), InlineRecipients(["a@example.com"]), state="suspended"
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
            await storing.materialize(
                pool, campaign_row(cid), InlineRecipients(["a@example.com"]), state="active"
            )
            is None
        )
        assert await store.counts(pool, cid) == {
            "pending": 0,
            "sent": 0,
            "failed": 0,
            "cancelled": 0,
            "suppressed": 0,
        }
        stored = await store.get(pool, cid)
        assert stored is not None and stored.state == "cancelled"
    finally:
        await pool.close()


async def test_deleted_while_storing_stops_it_and_keeps_no_rows(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        entries = [f"u{i}@example.com" for i in range(30)]

        class DeletedMidway(Dying):
            async def batches(self, start: int, offset: int) -> AsyncIterator[Batch]:
                async for batch in super().batches(start, offset):
                    yield batch
                    if not self.starts[1:]:  # after the first batch: the resource is deleted
                        self.starts.append(-1)
                        assert await store.tombstone(pool, cid, "ns", "x", 100) == (0, 0, 100)

        src = DeletedMidway(entries, 10, die_after=None)
        assert await storing.materialize(pool, campaign_row(cid), src, state="active") is None
        assert sum((await store.counts(pool, cid)).values()) == 0
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT to_regclass(%s)", (f"message_{cid.hex}",)).fetchone() == (
                None,
            )
        async with store.locked_state(pool, cid) as state:
            assert state == "cancelled"  # so no job is ever added
    finally:
        await pool.close()
