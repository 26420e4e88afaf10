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
