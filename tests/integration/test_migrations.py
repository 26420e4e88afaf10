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
    assert "ix_message_campaign_status_seq" in idx
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
