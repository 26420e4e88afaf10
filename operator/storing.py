"""Storing a campaign: its row, then its messages in batches, then one short attach.

The messages go into a table of the campaign's own (:mod:`notifq.core.partitions`), not
attached to ``message`` yet, so no worker, count or API sees half a list. Each batch is
one transaction that also records how far storing got (``campaign.stored_count``,
``source_offset``): nothing holds back vacuum for the whole list, a late failure redoes one
batch, and an operator killed at any point goes on from the last commit. Then the
indexes are built in bulk, and one transaction locks the campaign row, attaches the table
and sets ``materialized_at``; jobs are enqueued only after that (reconcile.py), so no
message is sent before its whole list is stored.

A delete while storing (``store.tombstone`` sets ``deleted_at``) stops it at the next batch
or at the attach, and the table is dropped: a campaign deleted before it was stored has no
messages, as before. Cancel and suspend do not stop storing: the campaign is stored in
its row's state and :func:`reconcile.follow_intent` applies the intent afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from itertools import zip_longest

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from notifq.core import jobs, partitions, queries
from notifq.core import recipients as rcpt
from notifq.core.errors import InvalidCampaign
from notifq.operator.batches import GENERATE_BATCH, Generated, Listed
from notifq.operator.sources import Batches, GeneratedRecipients
from notifq.operator.store import CampaignRow

log = logging.getLogger(__name__)


class Deleted(Exception):
    """The campaign was deleted while it was being stored."""


@dataclass(frozen=True, slots=True)
class Checks:
    """What storing checks of a list as it reads it (the namespace's policy, the settings)."""

    push_prefixes: tuple[str, ...] = ()
    """SNS ARN prefixes push targets must lie under (``NOTIFQ_PUSH_ARN_PREFIXES``)."""
    parallel: int = 1
    """COPYs a generated batch is written with at once (``NOTIFQ_STORE_PARALLEL``)."""
    max_recipients: int | None = None
    """The namespace's largest campaign: a list found longer while it is read (object
    storage) is refused and its rows dropped."""
    limit_message: str = ""
    """The message of that refusal (names the limit and the policy)."""
    max_chunks: int | None = None
    """Most chunks of the campaign (``NOTIFQ_MAX_CHUNKS``): its chunk size is set when the
    list is attached and its length known (:func:`jobs.chunk_size_for`); None keeps the
    row's."""


async def materialize(
    pool: AsyncConnectionPool,
    camp: CampaignRow,
    src: Batches,
    *,
    state: str,
    checks: Checks = Checks(),
) -> int | None:
    """Store the campaign in ``state`` and all its message rows, once; safe to repeat and
    to resume after a crash at any point.

    Returns the message count, or None when the campaign was deleted first (nothing is
    left of its messages).
    """
    cid = camp.id
    async with pool.connection() as conn:
        await _insert_campaign(conn, camp, state)
        cur = await conn.execute(
            "SELECT total, materialized_at, deleted_at, stored_count, source_offset, "
            "source_etag FROM campaign WHERE id = %s",
            (cid,),
        )
        row = await cur.fetchone()
        assert row is not None
        total, materialized, deleted, stored, offset, etag = row
        if materialized is not None:
            return int(total)
        if deleted is not None:
            await conn.execute(partitions.drop(cid))
            return None
        version = getattr(src, "etag", None)
        if stored and etag is not None and version != etag:
            await _forget(conn, camp)
            raise InvalidCampaign("the recipients object changed while it was being stored")
        cur = await conn.execute("SELECT to_regclass(%s)", (partitions.name(cid),))
        created = await cur.fetchone()
        if created is None or created[0] is None:  # a resumed store keeps its table's shape
            await conn.execute(partitions.create(cid, _splits(src, checks.parallel)))
        await conn.execute(partitions.prepare(cid))
        # rows past the last recorded batch are a batch cut short (its parts commit one
        # by one, :func:`_generate`): it is written again whole
        await conn.execute(
            sql.SQL("DELETE FROM {t} WHERE seq >= %s").format(
                t=sql.Identifier(partitions.name(cid))
            ),
            (int(stored),),
        )
        t0 = time.perf_counter()
        try:
            stored = await _fill(pool, conn, camp, src, int(stored), int(offset), checks)
        except Deleted:
            await conn.execute(partitions.drop(cid))
            return None
        except InvalidCampaign:
            await _forget(conn, camp)
            raise
        t1 = time.perf_counter()
        await _index(pool, conn, camp, checks.parallel)
        t2 = time.perf_counter()
        async with conn.transaction():
            cur = await conn.execute(
                "SELECT deleted_at FROM campaign WHERE id = %s FOR UPDATE", (cid,)
            )
            row = await cur.fetchone()
            if row is None or row[0] is not None:
                deleted = True
            else:
                deleted = False
                chunk = camp.chunk_size
                if checks.max_chunks is not None:
                    chunk = jobs.chunk_size_for(stored, chunk, checks.max_chunks)
                await conn.execute(partitions.settle(cid))
                await conn.execute(partitions.attach(cid))
                # rows written into the table directly: counted here, in the attach's
                # transaction (the triggers on message count every write from now on)
                await _count(conn, cid, chunk, src, stored)
                await conn.execute(
                    "UPDATE campaign SET total = %s, chunk_size = %s, materialized_at = now(), "
                    "started_at = now(), updated_at = now() WHERE id = %s",
                    (stored, chunk, cid),
                )
        if deleted:
            await conn.execute(partitions.drop(cid))
            return None
    log.info(
        "campaign %s/%s: %d rows stored in %.2fs, indexed in %.2fs, attached in %.2fs",
        camp.namespace,
        camp.name,
        stored,
        t1 - t0,
        t2 - t1,
        time.perf_counter() - t2,
    )
    return stored


async def _insert_campaign(conn: AsyncConnection, camp: CampaignRow, state: str) -> None:
    await conn.execute(
        "INSERT INTO campaign (id, namespace, name, channel, provider, subject, body, html, "
        "max_attempts, backoff_ms, chunk_size, rate_limit, total, state, phase, sent_count, "
        "failed_count) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, "
        "'Pending', 0, 0) ON CONFLICT (id) DO NOTHING",
        (
            camp.id,
            camp.namespace,
            camp.name,
            camp.channel,
            camp.provider,
            camp.subject,
            camp.body,
            camp.html,
            camp.max_attempts,
            camp.backoff_ms,
            camp.chunk_size,
            camp.rate_limit,
            state,
        ),
    )


async def _forget(conn: AsyncConnection, camp: CampaignRow) -> None:
    """Forget a partial store whose list turned out unusable: its table and its row. The
    campaign is refused; an edited spec is admitted afresh, like a new campaign (it waits
    for a slot, and its row holds the edited templates)."""
    await conn.execute(partitions.drop(camp.id))
    await conn.execute("DELETE FROM campaign WHERE id = %s AND materialized_at IS NULL", (camp.id,))


async def _fill(
    pool: AsyncConnectionPool,
    conn: AsyncConnection,
    camp: CampaignRow,
    src: Batches,
    start: int,
    offset: int,
    checks: Checks,
) -> int:
    """Write the batches from row ``start`` on, one transaction each; the rows stored."""
    table = sql.Identifier(partitions.name(camp.id))
    seq = start
    async for batch in src.batches(start, offset):
        size = batch.count if isinstance(batch, Generated) else len(batch.entries)
        if checks.max_recipients is not None and seq + size > checks.max_recipients:
            raise InvalidCampaign(checks.limit_message or "too many recipients")
        generated: tuple[int, str] | tuple[None, None] = (None, None)
        async with conn.transaction():
            if isinstance(batch, Generated):
                await _generate(pool, conn, camp.id, batch, seq, checks.parallel)
                seq += batch.count
                offset = 0
                generated = (batch.shift, batch.domain)  # how its rows' addresses are made
            else:
                seq = await _copy(conn, table, camp, batch, seq, checks.push_prefixes)
                offset = batch.offset
            cur = await conn.execute(
                "UPDATE campaign SET stored_count = %s, source_offset = %s, "
                "source_etag = coalesce(source_etag, %s), "
                "generated_from = coalesce(%s, generated_from), "
                "generated_domain = coalesce(%s, generated_domain), updated_at = now() "
                "WHERE id = %s AND deleted_at IS NULL",
                (
                    seq,
                    offset,
                    batch.etag if isinstance(batch, Listed) else None,
                    *generated,
                    camp.id,
                ),
            )
            if cur.rowcount == 0:
                raise Deleted  # rolls this batch back; the caller drops the table
    return seq


GENERATE = (
    "SELECT k.part, (SELECT string_agg(g::text, E'\\n') || E'\\n' "
    "FROM generate_series(k.lo, k.hi) g) "
    "FROM unnest(%(part)s::int[], %(lo)s::int[], %(hi)s::int[]) AS k (part, lo, hi)"
)
"""The text of a generated batch, made by Postgres: one row per block of ``TEXT_BLOCK``
rows (the part it belongs to, then COPY lines ``<seq>``). The rows hold no address: it
is computed from the seq and the campaign's ``generated_from``/``generated_domain``
(:data:`notifq.core.recipients.RECIPIENT_SQL`, migration 0014), which the batch's
transaction records. A million rows: 79 MiB of WAL instead of 102 MiB with the address
text, and 1.02-1.21 s instead of 1.63-1.75 s for the COPYs and keys (scratch Postgres,
alternating)."""

TEXT_BLOCK = 20_000
"""Generated rows per block of text (about 140 KiB; with the addresses in the text, 10,000
to 50,000 wrote a million rows as fast, 100,000 slower, on a scratch Postgres)."""

MIN_PART = 100_000
"""Fewest generated rows worth a statement (and a connection) of their own."""


def _parts(first: int, count: int, parallel: int) -> list[int]:
    """Bounds of the parts a generated batch of ``count`` rows from ``first`` is written
    in: ``[first, ..., first + count]``, up to ``parallel`` parts of ``MIN_PART`` or more."""
    n = max(1, min(parallel, count // MIN_PART))
    return [first + count * i // n for i in range(n + 1)]


def _splits(src: Batches, parallel: int) -> list[int]:
    """Where a campaign's table is split into ranges (:func:`partitions.create`): at the
    start of every part of a generated list written in more than one, so each range is
    filled by one statement in order; none (one plain table) for every other list."""
    if not isinstance(src, GeneratedRecipients):
        return []
    shift, end = len(src.include), len(src.include) + src.count
    batches = [
        _parts(first, min(GENERATE_BATCH, end - first), parallel)
        for first in range(shift, end, GENERATE_BATCH)
    ]
    if all(len(bounds) == 2 for bounds in batches):  # one part per batch: no gain
        return []
    return [start for bounds in batches for start in bounds[:-1] if start > 0]


async def _generate(
    pool: AsyncConnectionPool,
    conn: AsyncConnection,
    cid: uuid.UUID,
    batch: Generated,
    seq: int,
    parallel: int,
) -> None:
    """Write one generated batch from row ``seq`` as up to ``parallel`` COPYs at once, fed
    by one statement that makes their text (:data:`GENERATE`) on a connection of its own;
    the operator passes blocks of text along, never a row (each COPY is a Postgres process,
    so a core; each fills a range of the table of its own, :func:`_splits`).

    Why COPY: it writes a page of rows at a time (one WAL record per page, not per row),
    and the campaign and status come from the table's defaults (:func:`partitions.prepare`).
    A million rows took 1.12-1.32 s and 1.7-2.1 s of Postgres CPU this way, against
    1.42-1.87 s and 2.3-3.0 s as INSERT ... SELECT from ``generate_series`` (2 cores).

    The first part runs in ``conn``'s open transaction, which records the batch; the others
    commit on their own connections first, so a failure can leave some of them stored
    without the record: :func:`materialize` deletes rows past the record before it writes.
    """
    bounds = _parts(seq, batch.count, parallel)
    parts = len(bounds) - 1
    cur = await conn.execute(partitions.RANGES, (partitions.name(cid),))
    ranges = [(name, *partitions.seqs(bound)) for name, bound in await cur.fetchall()]
    targets = [  # into the range holding the whole part, not through the table: measured
        # 1.69-2.17 s against 2.19-2.53 s for accept-1m, alternating; the table itself when
        # none does (a plain table, or one whose ranges were cut otherwise)
        sql.Identifier(
            next(
                (n for n, lo, hi in ranges if lo <= bounds[i] and bounds[i + 1] <= hi),
                partitions.name(cid),
            )
        )
        for i in range(parts)
    ]
    blocks = [  # the parts' blocks taken in turn, so every COPY is fed at once
        block
        for turn in zip_longest(
            *(
                [
                    (i, lo, min(lo + TEXT_BLOCK, bounds[i + 1]) - 1)
                    for lo in range(bounds[i], bounds[i + 1], TEXT_BLOCK)
                ]
                for i in range(parts)
            )
        )
        for block in turn
        if block is not None
    ]
    feeds: list[asyncio.Queue[str | BaseException | None]] = [
        asyncio.Queue(maxsize=2) for _ in range(parts)
    ]

    async def write(i: int) -> None:
        feed = feeds[i]
        text: str | BaseException | None = ""
        try:
            async with AsyncExitStack() as stack:
                c = conn if i == 0 else await stack.enter_async_context(pool.connection())
                cur = await stack.enter_async_context(c.cursor())
                copy = await stack.enter_async_context(
                    cur.copy(COPY_GENERATED.format(t=targets[i]))
                )
                while (text := await feed.get()) is not None:
                    if isinstance(text, BaseException):
                        raise text
                    await copy.write(text)
        except BaseException:
            while text is not None:  # to the end of the feed: the maker never waits on it
                text = await feed.get()
            raise

    async def make() -> None:
        failure: BaseException | None = None
        try:
            async with pool.connection() as maker, maker.cursor() as cur:
                params = {
                    "part": [b[0] for b in blocks],
                    "lo": [b[1] for b in blocks],
                    "hi": [b[2] for b in blocks],
                }
                async for part, text in cur.stream(GENERATE, params):
                    if not isinstance(text, str):  # None would end the part's COPY early
                        raise RuntimeError(f"no text for a block of part {part}")
                    await feeds[part].put(text)
        except BaseException as exc:  # every part fails with it: none ends as if whole
            failure = exc
            raise
        finally:
            for feed in feeds:
                if failure is not None:
                    await feed.put(failure)
                await feed.put(None)

    await _all(make(), *(write(i) for i in range(parts)))


COPY_GENERATED = sql.SQL("COPY {t} (seq) FROM STDIN")


async def _all(*steps: Awaitable[None]) -> None:
    """Run ``steps`` at once; the first error is raised once every step has ended (none is
    left running on a connection while the caller goes on)."""
    for outcome in await asyncio.gather(*steps, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


async def _count(
    conn: AsyncConnection, cid: uuid.UUID, chunk: int, src: Batches, total: int
) -> None:
    """Counters of the stored table per ``chunk`` rows (in the attach's transaction): of a
    generated list computed, not scanned (only its ``include`` rows are read)."""
    table = sql.Identifier(partitions.name(cid))
    params: dict[str, object] = {"chunk": chunk}
    query = queries.COUNT_PARTITION
    if isinstance(src, GeneratedRecipients):
        query = queries.COUNT_GENERATED_PARTITION
        params.update(cid=cid, shift=len(src.include), total=total)
    await conn.execute(sql.SQL(query).format(table=table), params)


def _escape(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


async def _copy(
    conn: AsyncConnection,
    table: sql.Identifier,
    camp: CampaignRow,
    batch: Listed,
    seq: int,
    push_prefixes: tuple[str, ...],
) -> int:
    """COPY one batch of listed recipients (and their fields, when they have some) from
    row ``seq``; the next seq. The campaign is the table's default
    (:func:`partitions.prepare`)."""
    buf: list[str] = []
    fields = batch.data
    for i, r in enumerate(batch.entries):
        if batch.validate and (why := rcpt.problem(camp.channel, r, push_prefixes)) is not None:
            line = f"{seq}\t{_escape(rcpt.printable(r))}\tfailed\t{why}"
        else:
            line = f"{seq}\t{_escape(r)}\tpending\t\\N"
        if fields is not None:
            line += "\t" + _escape(json.dumps(fields[i], ensure_ascii=False))
        buf.append(line + "\n")
        seq += 1
    columns = "seq, recipient, status, last_error"
    if fields is not None:
        columns += ", data"
    async with (
        conn.cursor() as cur,
        cur.copy(sql.SQL(f"COPY {{t}} ({columns}) FROM STDIN").format(t=table)) as copy,
    ):
        await copy.write("".join(buf))
    return seq


async def _index(
    pool: AsyncConnectionPool, conn: AsyncConnection, camp: CampaignRow, parallel: int
) -> None:
    """Build the table's primary key once (its failed-status index was kept while rows
    were written, :func:`partitions.prepare`). A plain table: one sort of it. A table of
    ranges: each range's own, ``parallel`` ranges at a time (each a sort of rows already
    in order), then the table's, made of theirs. A crash anywhere leaves each index built
    or not at all; the next attempt builds what is missing."""
    cur = await conn.execute(partitions.INDEXED, (f"pk_{camp.id.hex}",))
    row = await cur.fetchone()
    if row and row[0]:
        return
    cur = await conn.execute(partitions.LEAVES, (partitions.name(camp.id),))
    leaves = [r[0] for r in await cur.fetchall()]
    if not leaves:
        await conn.execute(partitions.index(camp.id))
        await conn.execute(partitions.primary_key(camp.id))
        return
    room = asyncio.Semaphore(max(1, parallel))

    async def build_leaf(table: str) -> None:
        async with room, pool.connection() as other:
            done = await other.execute(
                partitions.INDEXED, (f"pk_{table.removeprefix(partitions.PREFIX)}",)
            )
            found = await done.fetchone()
            if not (found and found[0]):
                await other.execute(partitions.leaf_index(table))

    await _all(*(build_leaf(t) for t in leaves))
    await conn.execute(partitions.parent_index(camp.id))


async def discard(pool: AsyncConnectionPool, cid: uuid.UUID) -> None:
    """Drop the table of a deleted campaign whose storing never finished (no operator will
    resume it). Call after the tombstone committed: an attach then can no longer happen,
    and an attached table is left alone (its rows are kept, cancelled)."""
    async with pool.connection() as conn:
        cur = await conn.execute(ATTACHED, (partitions.name(cid),))
        row = await cur.fetchone()
        if row is not None and not row[0]:
            await conn.execute(partitions.drop(cid))


ATTACHED = (
    "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = 'message'::regclass AND c.relname = %s)"
)
