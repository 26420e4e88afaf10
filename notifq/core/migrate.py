"""Run Alembic migrations: ``notifq-migrate [upgrade|downgrade|current] [revision]``.

The migration scripts ship inside the package so the image and the Helm
migration Job run exactly what the tests ran.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from notifq.core.db import sqlalchemy_url
from notifq.core.settings import CommonSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at our migrations and ``database_url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate the database down to ``revision``."""
    command.downgrade(alembic_config(database_url), revision)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="notifq-migrate", description=__doc__)
    parser.add_argument(
        "action", choices=["upgrade", "downgrade", "current"], nargs="?", default="upgrade"
    )
    parser.add_argument("revision", nargs="?", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url = CommonSettings().database_url
    if args.action == "upgrade":
        upgrade(url, args.revision or "head")
    elif args.action == "downgrade":
        downgrade(url, args.revision or "base")
    else:
        command.current(alembic_config(url), verbose=True)


if __name__ == "__main__":
    main()
