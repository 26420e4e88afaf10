"""Alembic migrations on a real Postgres: upgrade on an empty database, downgrade, upgrade."""

from __future__ import annotations

import psycopg
import testbed

from notifq.core.migrate import downgrade, upgrade


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_upgrade_downgrade_upgrade(postgres: testbed.Postgres) -> None:
    url = postgres.create_database("notifq_migrations")
    assert _tables(url) == set()
    upgrade(url)
    assert {"campaign", "message", "admin", "alembic_version"} <= _tables(url)
    downgrade(url)
    assert _tables(url) == {"alembic_version"}
    upgrade(url)
    assert {"campaign", "message", "admin"} <= _tables(url)
    with psycopg.connect(url) as conn:
        idx = {
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'message'"
            ).fetchall()
        }
    assert "ix_message_failed" in idx
    assert "ix_message_campaign_status_seq" not in idx
    assert "ix_message_campaign_status" not in idx


def test_models_match_the_migrations(postgres: testbed.Postgres) -> None:
    """Alembic's autogenerate comparison finds nothing between the ORM models and the
    schema the migrations build: a column or index added to one but not the other fails."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from notifq.core.db import sqlalchemy_url
    from notifq.core.models import Base

    url = postgres.create_database("notifq_compare")
    upgrade(url)
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_counters_backfilled_for_rows_stored_before_0005(postgres: testbed.Postgres) -> None:
    """Rows written under 0004 (no counters yet) are counted by the upgrade to 0005, and
    counted on by the trigger afterwards; a campaign of another chunk size alongside."""
    from harness import assert_counters_match

    url = postgres.create_database("notifq_backfill")
    upgrade(url, "0004")
    with psycopg.connect(url, autocommit=True) as conn:
        for cid, chunk_size in (("00000000-0000-0000-0000-000000000001", 3), (None, 500)):
            row = conn.execute(
                "INSERT INTO campaign (id, namespace, name, channel, provider, subject, body, "
                "max_attempts, backoff_ms, chunk_size, total, state, phase, sent_count, "
                "failed_count) VALUES (coalesce(%s::uuid, gen_random_uuid()), 'ns', 'c', "
                "'email', 'mock', 's', 'b', 4, 1000, %s, 10, 'active', 'Processing', 0, 0) "
                "RETURNING id",
                (cid, chunk_size),
            ).fetchone()
            assert row is not None
            conn.execute(
                "INSERT INTO message (campaign_id, seq, recipient, status, attempts) "
                "SELECT %s, s, 'r' || s, (ARRAY['pending', 'sent', 'failed', 'cancelled'])"
                "[1 + s %% 4], s %% 2 FROM generate_series(0, 9) AS s",
                (row[0],),
            )
    upgrade(url)
    assert_counters_match(url)
    with psycopg.connect(url, autocommit=True) as conn:
        counted = conn.execute("SELECT count(*), sum(sent) FROM message_count").fetchone()
        assert (
            counted is not None and counted[0] == 4 + 1 and counted[1] == 2 * 3
        )  # seq 1, 5, 9 of each
        conn.execute("UPDATE message SET status = 'sent' WHERE status = 'pending'")
    assert_counters_match(url)


def test_0006_moves_existing_messages_into_partitions(postgres: testbed.Postgres) -> None:
    """Rows stored before 0006 keep every column, each campaign in a partition of its own;
    downgrading puts them back into one table."""
    import uuid

    url = postgres.create_database("notifq_partitions")
    upgrade(url, "0004")
    a, b = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url) as conn:
        for cid, n in ((a, 300), (b, 5)):
            conn.execute(
                "INSERT INTO campaign (id, namespace, name, channel, provider, subject, body, "
                "max_attempts, backoff_ms, chunk_size, total, state, phase, sent_count, "
                "failed_count, materialized_at) VALUES (%s, 'ns', 'x', 'email', 'auto', '', '', "
                "4, 1000, 100, %s, 'active', 'Pending', 0, 0, now())",
                (cid, n),
            )
            conn.execute(
                "INSERT INTO message (campaign_id, seq, recipient, status, attempts, last_error) "
                "SELECT %s, g, 'u' || g || '@example.com', CASE WHEN g %% 2 = 0 THEN 'sent' "
                "ELSE 'failed' END, 1, 'e' || g FROM generate_series(0, %s - 1) g",
                (cid, n),
            )
    before = _message_rows(url)
    upgrade(url, "0006")  # later revisions add columns
    assert _message_rows(url) == before
    with psycopg.connect(url) as conn:
        parts = {
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'message'::regclass"
            ).fetchall()
        }
        assert parts == {f"message_{a.hex}", f"message_{b.hex}"}
        stored: dict[object, object] = dict(
            conn.execute("SELECT id, stored_count FROM campaign").fetchall()
        )
        assert stored == {a: 300, b: 5}
        plan = conn.execute(
            "EXPLAIN SELECT seq FROM message WHERE campaign_id = %s AND status = 'pending' "
            "AND seq >= 0 AND seq < 100",
            (b,),
        ).fetchall()
        text = "\n".join(r[0] for r in plan)
        assert f"message_{b.hex}" in text and f"message_{a.hex}" not in text  # pruned
    downgrade(url, "0004")
    assert _message_rows(url) == before
    assert "message_unpartitioned" not in _tables(url)
    assert not {t for t in _tables(url) if t.startswith("message_")}


def test_0010_adds_fields_to_attached_and_half_stored_tables(postgres: testbed.Postgres) -> None:
    """``message.data`` reaches every partition and a table still being stored (not attached
    yet), so its attach works after the upgrade; downgrading takes it away again."""
    import uuid

    from notifq.core import partitions

    url = postgres.create_database("notifq_fields")
    upgrade(url, "0006")
    cid = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(partitions.create(cid))
    upgrade(url, "0010")

    def columns(table: str) -> set[str]:
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (table,),
            ).fetchall()
        return {str(r[0]) for r in rows}

    assert "data" in columns("message") and "data" in columns(partitions.name(cid))
    assert "html" in columns("campaign")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(partitions.attach(cid))
    downgrade(url, "0006")
    assert "data" not in columns("message") and "html" not in columns("campaign")


def _message_rows(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT * FROM message ORDER BY campaign_id, seq").fetchall()


def test_0009_counts_suppressed_and_attaches_tables_stored_before(
    postgres: testbed.Postgres,
) -> None:
    """After 0009 a message may be ``suppressed`` and the counters count it; a campaign's
    table that storing left unattached before the upgrade still attaches; downgrading
    turns suppressed messages into failed ones, counters following."""
    import uuid

    from harness import assert_counters_match
    from psycopg import sql

    from notifq.core import partitions, queries

    url = postgres.create_database("notifq_suppressed")
    upgrade(url, "0006")
    a, half = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        for cid in (a, half):
            conn.execute(
                "INSERT INTO campaign (id, namespace, name, channel, provider, subject, body, "
                "max_attempts, backoff_ms, chunk_size, total, state, phase, sent_count, "
                "failed_count) VALUES (%s, 'ns', 'x', 'email', 'auto', '', '', 4, 1000, 2, 4, "
                "'active', 'Pending', 0, 0)",
                (cid,),
            )
        conn.execute(f"CREATE TABLE message_{a.hex} PARTITION OF message FOR VALUES IN ('{a}')")
        conn.execute(
            "INSERT INTO message (campaign_id, seq, recipient) "
            "SELECT %s, g, 'u' || g || '@example.com' FROM generate_series(0, 3) g",
            (a,),
        )
        conn.execute(partitions.create(half))  # storing under way during the upgrade
    upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE message SET status = 'suppressed', last_error = 'suppressed: bounce' "
            "WHERE campaign_id = %s AND seq < 3",
            (a,),
        )
        assert conn.execute(queries.COUNTERS, (a,)).fetchone() == (1, 0, 0, 0, 0, 3)
        conn.execute(
            f"INSERT INTO message_{half.hex} (campaign_id, seq, recipient, status) "
            f"VALUES ('{half}', 0, 'x@example.com', 'suppressed')"
        )
        conn.execute(partitions.attach(half))
        conn.execute(
            sql.SQL(queries.COUNT_PARTITION).format(table=sql.Identifier(partitions.name(half))),
            {"chunk": 2},
        )  # as storing counts a table it attaches
    assert_counters_match(url)
    downgrade(url, "0006")
    with psycopg.connect(url) as conn:
        assert conn.execute(queries.COUNT_BY_STATUS + " ORDER BY 1", (a,)).fetchall() == [
            ("failed", 3),
            ("pending", 1),
        ]
        counts = conn.execute(
            "SELECT sum(pending), sum(failed) FROM message_count WHERE campaign_id = %s", (a,)
        ).fetchone()
        assert counts == (1, 3)


def test_0014_lets_tables_being_stored_take_rows_without_an_address(
    postgres: testbed.Postgres,
) -> None:
    """A generated store under way during the upgrade (its table not attached yet, plain or
    split by ranges) takes rows without an address afterwards, as the new operator writes
    them; downgrading writes the computed addresses into every table, attached or not,
    and makes the column NOT NULL again; an attached campaign keeps its rows."""
    import uuid

    from notifq.core import partitions

    url = postgres.create_database("notifq_generated")
    upgrade(url, "0013")
    attached, plain, ranged = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        for cid in (attached, plain, ranged):
            conn.execute(
                "INSERT INTO campaign (id, namespace, name, channel, provider, subject, body, "
                "max_attempts, backoff_ms, chunk_size, total, state, phase, sent_count, "
                "failed_count) VALUES (%s, 'ns', 'x', 'email', 'auto', '', '', 4, 1000, 500, "
                "6, 'active', 'Pending', 0, 0)",
                (cid,),
            )
        conn.execute(partitions.create(attached))
        conn.execute(partitions.create(plain))
        conn.execute(partitions.create(ranged, [2, 4]))
        for cid in (attached, plain, ranged):
            conn.execute(partitions.prepare(cid))
        conn.execute(
            f"INSERT INTO {partitions.name(attached)} (seq, recipient) "
            "SELECT g, 'a' || g || '@example.com' FROM generate_series(0, 5) g"
        )
        conn.execute(partitions.settle(attached))
        conn.execute(partitions.attach(attached))
    upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for cid in (plain, ranged):
            conn.execute(
                f"INSERT INTO {partitions.name(cid)} (seq) SELECT generate_series(0, 5)"
            )  # NOT NULL would refuse these
            conn.execute(
                "UPDATE campaign SET generated_from = 1, generated_domain = 'example.org' "
                "WHERE id = %s",
                (cid,),
            )
    downgrade(url, "0013")
    with psycopg.connect(url) as conn:
        for cid in (plain, ranged):
            rows = conn.execute(
                f"SELECT seq, recipient FROM {partitions.name(cid)} ORDER BY seq"
            ).fetchall()
            assert rows == [(s, f"user{s - 1}@example.org") for s in range(6)]
        rows = conn.execute(
            "SELECT seq, recipient FROM message WHERE campaign_id = %s ORDER BY seq", (attached,)
        ).fetchall()
        assert rows == [(s, f"a{s}@example.com") for s in range(6)]
        nullable = conn.execute(
            "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE a.attname = 'recipient' AND NOT a.attnotnull AND c.relname ~ '^message'"
        ).fetchall()
        assert nullable == []
