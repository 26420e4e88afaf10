"""Message rows live in one partition per campaign (``message`` is partitioned by LIST on
``campaign_id``).

Why per campaign (measured, docs/architecture.md "Partitions"): every query of the workers
and the operator names one campaign, so it reads one partition; storing fills a table of
its own that no one else reads, builds its primary key in bulk and attaches it in one short
step; expiring a campaign's rows is dropping one table, not a DELETE of millions.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from psycopg import sql

PREFIX = "message_"

FAILED_ONLY = "WHERE status IN ('failed', 'suppressed')"
"""The predicate of the status index (migration 0012): only rows looked up by status."""


def name(cid: uuid.UUID) -> str:
    """The table of one campaign's messages (attached to ``message`` once stored)."""
    return f"{PREFIX}{cid.hex}"


def create(cid: uuid.UUID, splits: Sequence[int] = ()) -> sql.Composed:
    """A table shaped like ``message`` for one campaign's rows, not attached yet: its CHECK
    constraint lets ``ATTACH PARTITION`` skip the validating scan.

    With ``splits`` (ascending seqs), the table is itself partitioned by range of ``seq``
    at them, each range a table of its own (:func:`leaf`, numbered from 0): parts of a
    list written at once each fill one table in order and are indexed on their own
    (:func:`leaf_index`), instead of interleaving their rows in one table whose index
    build then sorts them. One statement string, so one transaction: the table and its
    ranges exist together or not at all."""
    t = sql.Identifier(name(cid))
    table = sql.SQL(
        "CREATE TABLE IF NOT EXISTS {t} (LIKE message INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
        "CONSTRAINT {ck} CHECK (campaign_id = {cid}))"
    ).format(t=t, ck=sql.Identifier(f"ck_{cid.hex}_campaign"), cid=sql.Literal(str(cid)))
    if not splits:
        return table
    edges: list[sql.Composable] = [
        sql.SQL("MINVALUE"),
        *(sql.Literal(int(x)) for x in splits),
        sql.SQL("MAXVALUE"),
    ]
    ranges = [
        sql.SQL("CREATE TABLE {r} PARTITION OF {t} FOR VALUES FROM ({lo}) TO ({hi})").format(
            r=sql.Identifier(leaf(cid, i)), t=t, lo=edges[i], hi=edges[i + 1]
        )
        for i in range(len(edges) - 1)
    ]
    return sql.SQL("; ").join([table + sql.SQL(" PARTITION BY RANGE (seq)"), *ranges])


def leaf(cid: uuid.UUID, i: int) -> str:
    """Range ``i`` of a campaign's table created with splits (:func:`create`)."""
    return f"{name(cid)}_{i}"


LEAVES = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname"
)
"""The ranges of a campaign's table (parameter: its :func:`name`); none: a plain table."""


def prepare(cid: uuid.UUID) -> sql.Composed:
    """What writing a campaign's table needs, run before every fill (a no-op once done,
    and it brings a table an older operator left half stored up to date):

    - ``campaign_id`` defaults to the campaign, so rows are written without it (a COPY
      of 500,000 rows took 0.86-1.01 s of a core with the campaign and the status in its
      text, 0.42-0.58 s without them: parsing a uuid per row is dear);
    - the failed-status index exists from the start and is kept as rows come (a stored
      list has none or few such rows), instead of a scan of the whole table after.

    :func:`settle` drops the default before the table is attached."""
    t = sql.Identifier(name(cid))
    return sql.SQL(
        "ALTER TABLE {t} ALTER COLUMN campaign_id SET DEFAULT {cid}; "
        "CREATE INDEX IF NOT EXISTS {ix} ON {t} (campaign_id, status, seq) " + FAILED_ONLY
    ).format(t=t, cid=sql.Literal(str(cid)), ix=sql.Identifier(f"ix_{cid.hex}_failed"))


def settle(cid: uuid.UUID) -> sql.Composed:
    """Undo :func:`prepare`'s default (in the attach's transaction): once attached, rows
    are written through ``message``, whose ``campaign_id`` has none."""
    return sql.SQL("ALTER TABLE {t} ALTER COLUMN campaign_id DROP DEFAULT").format(
        t=sql.Identifier(name(cid))
    )


RANGES = (
    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
    "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)"
)
"""The ranges of a campaign's table and their bounds as Postgres prints them (parameter:
its :func:`name`); none: a plain table. :func:`seqs` reads a bound."""

BOUND = re.compile(r"FOR VALUES FROM \((MINVALUE|-?\d+)\) TO \((MAXVALUE|-?\d+)\)")


def seqs(bound: str) -> tuple[float, float]:
    """The seqs ``[from, to)`` of a range's bound as Postgres prints it; an empty range
    when it is not one of ours (nothing is then written into it directly)."""
    m = BOUND.fullmatch(bound)
    if m is None:
        return (0.0, 0.0)
    lo, hi = m.groups()
    return (
        float("-inf") if lo == "MINVALUE" else int(lo),
        float("inf") if hi == "MAXVALUE" else int(hi),
    )


def leaf_index(table: str) -> sql.Composed:
    """The primary key of one range (:func:`leaf`), built with one sort of it; a no-op
    once done (the caller checks ``pk_<suffix>`` with :data:`INDEXED` first: adding a
    primary key twice is an error). The failed-status index is there already
    (:func:`prepare`)."""
    t = sql.Identifier(table)
    pk = sql.Identifier(f"pk_{table.removeprefix(PREFIX)}")
    return sql.SQL(
        # one process per range: the ranges are built side by side, a core each, and a
        # range's rows fit a sort in memory (parallel sort workers always spill to disk)
        "SET LOCAL max_parallel_maintenance_workers = 0; "
        "CREATE UNIQUE INDEX IF NOT EXISTS {pk} ON {t} (campaign_id, seq); "
        "ALTER TABLE {t} ADD CONSTRAINT {pk} PRIMARY KEY USING INDEX {pk}"
    ).format(t=t, pk=pk)


def parent_index(cid: uuid.UUID) -> sql.Composed:
    """The primary key of a table partitioned by ranges, once every range has its own
    (:func:`leaf_index`): made of theirs, nothing is built, and :data:`INDEXED` on
    ``pk_<hex>`` then says all is done."""
    return sql.SQL("ALTER TABLE {t} ADD CONSTRAINT {pk} PRIMARY KEY (campaign_id, seq)").format(
        t=sql.Identifier(name(cid)), pk=sql.Identifier(f"pk_{cid.hex}")
    )


def index(cid: uuid.UUID) -> sql.Composed:
    """The unique index of the primary key, built on one campaign's table in bulk (one
    sort, instead of one insertion per row), so attaching it finds it and builds nothing;
    a no-op once done. :func:`primary_key` follows it."""
    return sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {pk} ON {t} (campaign_id, seq)").format(
        t=sql.Identifier(name(cid)), pk=sql.Identifier(f"pk_{cid.hex}")
    )


def primary_key(cid: uuid.UUID) -> sql.Composed:
    """The primary key of one campaign's table, from its unique index (:func:`index`)."""
    pk = sql.Identifier(f"pk_{cid.hex}")
    return sql.SQL("ALTER TABLE {t} ADD CONSTRAINT {pk} PRIMARY KEY USING INDEX {pk}").format(
        t=sql.Identifier(name(cid)), pk=pk
    )


def attach(cid: uuid.UUID) -> sql.Composed:
    """Make a stored campaign's rows part of ``message``. Takes SHARE UPDATE EXCLUSIVE on
    ``message``: reads and writes of other campaigns go on meanwhile."""
    return sql.SQL("ALTER TABLE message ATTACH PARTITION {t} FOR VALUES IN ({cid})").format(
        t=sql.Identifier(name(cid)), cid=sql.Literal(str(cid))
    )


def drop(cid: uuid.UUID) -> sql.Composed:
    """Drop one campaign's table if it exists (detached first, see :func:`detach`)."""
    return sql.SQL("DROP TABLE IF EXISTS {t}").format(t=sql.Identifier(name(cid)))


def detach(cid: uuid.UUID, *, finalize: bool = False) -> sql.Composed:
    """Take one campaign's table out of ``message`` without blocking the others' queries
    (two transactions inside Postgres: run it outside a transaction block); ``finalize``
    completes such a detach that was interrupted."""
    how = "FINALIZE" if finalize else "CONCURRENTLY"
    return sql.SQL("ALTER TABLE message DETACH PARTITION {t} " + how).format(
        t=sql.Identifier(name(cid))
    )


INDEXED = "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = %s AND contype = 'p')"
"""Whether the campaign's table has its primary key yet (parameter: ``pk_<hex>``)."""
