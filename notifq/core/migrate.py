"""Run Alembic migrations: ``notifq-migrate [upgrade|downgrade|current|wait] [revision]``.

The migration scripts ship inside the package so the image and the Helm
migration Job run exactly what the tests ran.

- ``upgrade --wait-timeout S`` (the chart's migration Job): wait up to S seconds
  for Postgres, then migrate under an advisory lock, so concurrent runs (two
  releases' Jobs, a Job retried while its predecessor still runs) migrate once.
- ``wait --timeout S`` (every notifq pod's init container): wait until Postgres
  answers and the schema is at this release's head, without changing anything.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from notifq.core.db import libpq_url, sqlalchemy_url
from notifq.core.readiness import NotReady, wait_for_postgres, wait_for_schema
from notifq.core.settings import CommonSettings

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
LOCK_KEY = 0x6E6F7469667121
"""pg_advisory_lock key that serializes migrations ("notifq!")."""


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at our migrations and ``database_url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return cfg


@contextmanager
def migration_lock(database_url: str) -> Iterator[None]:
    """Hold the migration advisory lock (a session lock on a connection of its own)."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (one migration at a time)."""
    with migration_lock(database_url):
        command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate the database down to ``revision``."""
    with migration_lock(database_url):
        command.downgrade(alembic_config(database_url), revision)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="notifq-migrate", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "action", choices=["upgrade", "downgrade", "current", "wait"], nargs="?", default="upgrade"
    )
    parser.add_argument("revision", nargs="?", default=None)
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=0.0,
        help="upgrade/downgrade: first wait this many seconds for Postgres",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="wait: give up after this many seconds (exit status 1)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    url = CommonSettings().database_url
    try:
        if args.action == "wait":
            wait_for_schema(url, ScriptDirectory.from_config(alembic_config(url)), args.timeout)
            return
        if args.wait_timeout > 0 and args.action != "current":
            wait_for_postgres(url, args.wait_timeout)
    except NotReady as exc:
        log.error("giving up: %s", exc)
        sys.exit(1)
    if args.action == "upgrade":
        upgrade(url, args.revision or "head")
    elif args.action == "downgrade":
        downgrade(url, args.revision or "base")
    else:
        command.current(alembic_config(url), verbose=True)


if __name__ == "__main__":
    main()
