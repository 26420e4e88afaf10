"""First install without crash loops, on a real Postgres: ``notifq-migrate upgrade
--wait-timeout`` (the migration Job) waits for a Postgres that is not up yet, two
migrations at once migrate once, and ``notifq-migrate wait`` (every pod's init
container) holds a pod back until the schema exists, or gives up with a clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import testbed

from notifq.core.migrate import alembic_config
from notifq.core.readiness import schema_revisions

PY = sys.executable


def migrate(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "notifq.core.migrate", *args],
        env={**os.environ, "NOTIFQ_DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=180)
    return proc.returncode, out


def at_head(url: str) -> bool:
    from alembic.script import ScriptDirectory

    current, heads = schema_revisions(url, ScriptDirectory.from_config(alembic_config(url)))
    return current == heads


def test_the_job_waits_for_postgres_to_come_up(tmp_path: Path) -> None:
    pg = testbed.Postgres(tmp_path / "late-pg")  # not started yet: its port is chosen
    url = pg.url("postgres")
    job = migrate(url, "upgrade", "--wait-timeout", "120")
    try:
        pg.start()
        code, out = finish(job)
        assert code == 0, out
        assert f"waiting for Postgres at 127.0.0.1:{pg.port}/postgres" in out
        assert "Postgres at" in out and "answers" in out
        assert at_head(url)
    finally:
        job.kill()
        job.communicate()  # reaped and its pipe closed, whatever happened above
        pg.stop()


def test_the_job_gives_up_with_a_clear_message(tmp_path: Path) -> None:
    url = f"postgresql://notifq:secret@127.0.0.1:{testbed.free_port()}/notifq"
    code, out = finish(migrate(url, "upgrade", "--wait-timeout", "3"))
    assert code == 1
    assert "giving up: Postgres at 127.0.0.1:" in out and "did not answer within 3 s" in out
    assert "secret" not in out  # no credentials in logs


def test_two_migrations_at_once_migrate_once(postgres: testbed.Postgres) -> None:
    url = postgres.create_database("notifq_concurrent_migrate")
    jobs = [migrate(url, "upgrade") for _ in range(3)]
    results = [finish(j) for j in jobs]
    assert all(code == 0 for code, _ in results), results
    assert at_head(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


def test_pods_wait_for_the_schema_then_start(postgres: testbed.Postgres) -> None:
    url = postgres.create_database("notifq_wait_schema")
    # an unmigrated database: the init container gives up after its timeout, saying why
    code, out = finish(migrate(url, "wait", "--timeout", "3"))
    assert code == 1
    assert "schema of 127.0.0.1:" in out and "still at empty" in out
    assert "has the migration Job (notifq-migrate upgrade) run?" in out

    # the same wait, migrated meanwhile: it lets the pod start
    waiting = migrate(url, "wait", "--timeout", "120")
    try:
        code, out = finish(migrate(url, "upgrade"))
        assert code == 0, out
        code, out = finish(waiting)
        assert code == 0, out
        assert ": ready" in out
    finally:
        waiting.kill()
