"""Waiting for Postgres and for the schema, so pods wait instead of crash-looping.

On a first install Postgres may not be up yet and the migration Job may not have
run; every notifq pod runs ``notifq-migrate wait`` as an init container (and the
Job ``notifq-migrate upgrade --wait-timeout ...``), which polls here with one log
line at a time saying what it waits for, and gives up after a timeout with a
message that names the cause.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import psycopg
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from notifq.core.db import libpq_url, sqlalchemy_url

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
REPORT_SECONDS = 10.0
"""At most one 'still waiting' line per this many seconds."""


class NotReady(Exception):
    """Postgres or the schema was not ready within the timeout."""


def where(url: str) -> str:
    """``host:port/database`` of a URL, without credentials (for log lines)."""
    parts = urlsplit(libpq_url(url))
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


def wait_for_postgres(url: str, timeout: float) -> None:
    """Return once Postgres accepts a connection; :class:`NotReady` after ``timeout``."""
    deadline = time.monotonic() + timeout
    reported = 0.0
    log.info("waiting for Postgres at %s (up to %g s)", where(url), timeout)
    while True:
        try:
            psycopg.connect(libpq_url(url), connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            last = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        else:
            log.info("Postgres at %s answers", where(url))
            return
        now = time.monotonic()
        if now >= deadline:
            raise NotReady(f"Postgres at {where(url)} did not answer within {timeout:g} s: {last}")
        if now - reported >= REPORT_SECONDS:
            reported = now
            log.info(
                "Postgres at %s not reachable yet (%.0f s left): %s",
                where(url),
                deadline - now,
                last,
            )
        time.sleep(POLL_SECONDS)


def schema_revisions(url: str, scripts: ScriptDirectory) -> tuple[set[str], set[str]]:
    """(revisions the database is at, head revisions of the shipped migrations)."""
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
    return current, set(scripts.get_heads())


def wait_for_schema(url: str, scripts: ScriptDirectory, timeout: float) -> None:
    """Return once the schema is at the shipped head (or newer); :class:`NotReady` after
    ``timeout``. A revision this release does not know is a newer release's migration
    (migrations are additive, so older pods still work with it)."""
    deadline = time.monotonic() + timeout
    wait_for_postgres(url, timeout)
    known = {rev.revision for rev in scripts.walk_revisions()}
    reported = 0.0
    while True:
        current, heads = schema_revisions(url, scripts)
        if current == heads:
            log.info("schema at %s: ready", ", ".join(sorted(heads)))
            return
        if current and not current <= known:
            log.warning(
                "schema at %s, newer than this release's %s: going ahead",
                ", ".join(sorted(current)),
                ", ".join(sorted(heads)),
            )
            return
        now = time.monotonic()
        state = ", ".join(sorted(current)) or "empty"
        if now >= deadline:
            raise NotReady(
                f"schema of {where(url)} still at {state}, not {', '.join(sorted(heads))}, "
                f"after {timeout:g} s: has the migration Job (notifq-migrate upgrade) run?"
            )
        if now - reported >= REPORT_SECONDS:
            reported = now
            log.info(
                "schema of %s at %s; waiting for %s from the migration Job (%.0f s left)",
                where(url),
                state,
                ", ".join(sorted(heads)),
                deadline - now,
            )
        time.sleep(POLL_SECONDS)
