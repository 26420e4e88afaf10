"""Accounts read once and kept while Postgres says they have not changed.

Every request with a local token compares the token's version with its account's
(:func:`notifq.api.deps.authenticate`): a new password or a removed account revokes
every token at once. Reading the account for each request was a fifth of the API's CPU
on a busy read endpoint, so the rows are kept here, and dropped as soon as they change:

- A trigger on ``admin`` (migration 0013) sends ``NOTIFY notifq_admin`` with the
  account's id when a row is updated or deleted (``*`` after a TRUNCATE), whoever made
  the change: this API, another replica, ``notifq-api set-password`` or plain SQL. The
  notification leaves when the change commits.
- One connection of this API listens (:meth:`AccountCache.listen`). Rows are kept only
  while it does: before ``LISTEN`` took effect, after it failed, or while a liveness
  check is overdue, every request reads its account as before.
- A read that overlapped a notification is not kept (``generation``), so a row read
  before a change cannot be stored after the change was heard.
- Each row is kept at most ``ttl`` seconds (``NOTIFQ_ACCOUNT_CACHE_SECONDS``) all the
  same; 0 turns keeping off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import psycopg
from psycopg_pool import AsyncConnectionPool

from notifq.api import accounts
from notifq.api.accounts import AdminRow

log = logging.getLogger(__name__)

CHANNEL = "notifq_admin"
"""The channel migration 0013's trigger notifies (payload: the account id, or ``*``)."""

APPLICATION = "notifq-api account changes"
"""The listening connection's ``application_name`` (``pg_stat_activity``)."""

CHECK_SECONDS = 5.0
"""How often the listening connection proves it is alive (one ``SELECT 1``); a check
unanswered in this time counts as a lost connection."""


class AccountCache:
    """Account rows by id, kept only while the change notifications are heard."""

    def __init__(self, ttl: float, *, check_seconds: float = CHECK_SECONDS) -> None:
        self.ttl = ttl
        self.check_seconds = check_seconds
        self.listening = False
        """Whether ``LISTEN`` is in effect on a live connection: rows are kept only then."""
        self.generation = 0
        """Raised by every notification and every change of ``listening``."""
        self._rows: dict[uuid.UUID, tuple[float, AdminRow]] = {}
        self._quiet = False
        """An outage was logged at WARNING and no connection has listened since: its next
        failures are logged at DEBUG (a Postgres that is down fails every second)."""

    async def by_id(self, pool: AsyncConnectionPool, admin_id: uuid.UUID) -> AdminRow | None:
        """The account, from the cache when it is known unchanged, else read (and kept)."""
        if self.is_kept(admin_id):
            return self._rows[admin_id][1]
        generation = self.generation
        row = await accounts.by_id(pool, admin_id)
        if row is not None and self.ttl > 0 and self.listening and generation == self.generation:
            self._rows[admin_id] = (time.monotonic() + self.ttl, row)
        return row

    def is_kept(self, admin_id: uuid.UUID) -> bool:
        """Whether the next :meth:`by_id` of this account is answered without a read."""
        hit = self._rows.get(admin_id)
        return self.listening and hit is not None and hit[0] > time.monotonic()

    def forget(self, admin_id: uuid.UUID | None = None) -> None:
        """Drop one account's row (None: all); reads under way are not kept either."""
        self.generation += 1
        if admin_id is None:
            self._rows.clear()
        else:
            self._rows.pop(admin_id, None)

    def heard(self, payload: str) -> None:
        """A notification of the trigger: forget the account it names (all for ``*`` or
        anything unreadable)."""
        try:
            self.forget(uuid.UUID(payload))
        except ValueError:
            self.forget()

    def _set_listening(self, on: bool) -> None:
        self.listening = on
        self.forget()

    async def listen(self, conninfo: str, *, retry_seconds: float = 1.0) -> None:
        """Listen for changes until cancelled, reconnecting after any failure (rows are
        not kept meanwhile). Run it as a task for the life of the API."""
        if self.ttl <= 0:
            return
        while True:
            try:
                await self._listen_once(conninfo)  # rows are kept only while it runs
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: connect again
                log.log(
                    logging.DEBUG if self._quiet else logging.WARNING,
                    "account changes not heard (%s); accounts are read per request",
                    exc,
                )
                self._quiet = True
            await asyncio.sleep(retry_seconds)

    async def _listen_once(self, conninfo: str) -> None:
        conn = await psycopg.AsyncConnection.connect(
            conninfo, autocommit=True, connect_timeout=10, application_name=APPLICATION
        )
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            self._quiet = False
            self._set_listening(True)
            log.info("listening for account changes; account rows are kept up to %ss", self.ttl)
            while True:
                async for note in conn.notifies(timeout=self.check_seconds):
                    self.heard(note.payload)
                # alive, and every change committed before this answer has been heard
                # (a notification reaches a listener before its next query's answer)
                await asyncio.wait_for(conn.execute("SELECT 1"), self.check_seconds)
        finally:
            self._set_listening(False)
            with contextlib.suppress(Exception):
                await conn.close()
