"""The API's kept account rows against a real Postgres: a change of an account, made by
anyone, drops its row as soon as the change commits (migration 0013's notification),
another account's row stays; while the changes are not heard, nothing is kept."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest
import testbed
from psycopg_pool import AsyncConnectionPool

from notifq.api import accounts
from notifq.api.account_cache import APPLICATION, AccountCache
from notifq.core.db import libpq_url, open_pool


async def until(check: Callable[[], bool], what: str, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def accounts_url(postgres: testbed.Postgres) -> str:
    """A database of its own: the test truncates ``admin``."""
    url = postgres.create_database("notifq_account_cache")
    testbed.migrate(url)
    return url


@pytest.fixture
async def cache(accounts_url: str) -> AsyncIterator[AccountCache]:
    kept = AccountCache(3600, check_seconds=0.5)  # only a notification can drop a row
    task = asyncio.create_task(kept.listen(libpq_url(accounts_url), retry_seconds=1.0))
    await until(lambda: kept.listening, "the cache to listen")
    yield kept
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def pool(accounts_url: str) -> AsyncIterator[AsyncConnectionPool]:
    p = await open_pool(accounts_url)
    yield p
    await p.close()


async def make(pool: AsyncConnectionPool, email: str) -> uuid.UUID:
    await accounts.upsert(pool, email, "hash")
    row = await accounts.by_email(pool, email)
    assert row is not None
    return row.id


def sql(url: str, statement: str, *params: object) -> None:
    """A change made by someone else: another connection, committed."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement, params)


async def test_a_change_drops_the_changed_account_only(
    accounts_url: str, cache: AccountCache, pool: AsyncConnectionPool
) -> None:
    a = await make(pool, f"a-{uuid.uuid4().hex[:6]}@example.com")
    b = await make(pool, f"b-{uuid.uuid4().hex[:6]}@example.com")
    first = await cache.by_id(pool, a)
    assert first is not None and (await cache.by_id(pool, b)) is not None
    assert cache.is_kept(a) and cache.is_kept(b)

    # a new token version from plain SQL: a's row goes, b's stays
    sql(accounts_url, "UPDATE admin SET token_version = token_version + 1 WHERE id = %s", a)
    await until(lambda: not cache.is_kept(a), "a's row to be dropped")
    assert cache.is_kept(b)
    again = await cache.by_id(pool, a)
    assert again is not None and again.token_version == first.token_version + 1

    # a removed account: its row goes, and it reads as missing
    sql(accounts_url, "DELETE FROM admin WHERE id = %s", b)
    await until(lambda: not cache.is_kept(b), "b's row to be dropped")
    assert cache.is_kept(a)
    assert await cache.by_id(pool, b) is None

    # TRUNCATE names no row: every row goes
    sql(accounts_url, "TRUNCATE admin")
    await until(lambda: not cache.is_kept(a), "every row to be dropped")
    assert await cache.by_id(pool, a) is None


async def test_a_read_that_overlaps_a_change_is_not_kept(
    cache: AccountCache, pool: AsyncConnectionPool
) -> None:
    a = await make(pool, f"c-{uuid.uuid4().hex[:6]}@example.com")
    reading = asyncio.create_task(cache.by_id(pool, a))
    await asyncio.sleep(0)  # the read has begun
    cache.heard(str(a))  # a change heard while it runs
    assert (await reading) is not None
    assert not cache.is_kept(a)
    await cache.by_id(pool, a)
    assert cache.is_kept(a)


async def test_nothing_is_kept_while_changes_are_not_heard(
    accounts_url: str, cache: AccountCache, pool: AsyncConnectionPool
) -> None:
    a = await make(pool, f"d-{uuid.uuid4().hex[:6]}@example.com")
    await cache.by_id(pool, a)
    assert cache.is_kept(a)
    sql(
        accounts_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = %s AND datname = current_database()",
        APPLICATION,
    )
    await until(lambda: not cache.listening, "the lost listener to be noticed")
    assert not cache.is_kept(a)
    # reads meanwhile go to the database and are not kept: a change is seen at once
    sql(accounts_url, "UPDATE admin SET token_version = 41 WHERE id = %s", a)
    row = await cache.by_id(pool, a)
    assert row is not None and row.token_version == 41
    # listening again (a new connection): rows are kept again, and dropped on change
    await until(lambda: cache.listening, "the cache to listen again")
    await cache.by_id(pool, a)
    assert cache.is_kept(a)
    sql(accounts_url, "UPDATE admin SET token_version = 42 WHERE id = %s", a)
    await until(lambda: not cache.is_kept(a), "a's row to be dropped")
