"""Postgres side of the worker: read pending rows, claim them, write outcomes in batches.

Per slice: one SELECT of pending rows, one UPDATE that claims the rows about to
be sent, one UPDATE that records their outcomes; no per-message commit and no
campaign counter (the database's trigger adds the UPDATE's net change to the
chunk's ``message_count`` row in the same transaction, migration 0005). Only the claim's holder
records, and only over rows still ``pending``, so a message already sent is
never overwritten and a second sender of the same chunk cannot send it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from notifq.core.errors import DatabaseUnavailable
from notifq.core.recipients import RECIPIENT_SQL
from notifq.core.templating import MessageTemplate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    id: uuid.UUID
    name: str
    channel: str
    provider: str
    state: str
    max_attempts: int
    rate_limit: int | None
    template: MessageTemplate
    namespace: str = ""
    generated: tuple[int, str] | None = None
    """A generated list's first generated seq and domain: its rows hold no address
    (:data:`RECIPIENT`)."""


@dataclass(frozen=True, slots=True)
class PendingRow:
    seq: int
    recipient: str
    attempts: int
    data: dict[str, str] | None = None
    """The recipient's fields (a CSV row, a ``records`` entry), None for a plain address."""
    suppressed: str | None = None
    """Set by the claim: why the recipient is on the suppression list (not to be sent)."""


@dataclass(frozen=True, slots=True)
class Write:
    """The new state of one message after one attempt."""

    seq: int
    status: str  # 'sent' | 'failed' | 'suppressed' | 'pending' (a transient failure to retry)
    error: str | None
    provider: str
    provider_id: str | None
    throttled: bool = False
    """Back to pending without spending an attempt: answered Throttling, or found the
    provider down as the failover breaker opened (sent again through the secondary)."""


class CampaignCache:
    """Campaign rows by id; the ``state`` is re-read at most every ``ttl`` seconds."""

    def __init__(self, pool: AsyncConnectionPool, ttl: float = 1.0) -> None:
        self.pool = pool
        self.ttl = ttl
        self._items: dict[uuid.UUID, tuple[float, CampaignInfo]] = {}

    async def get(self, cid: uuid.UUID) -> CampaignInfo | None:
        hit = self._items.get(cid)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT name, channel, provider, state, max_attempts, rate_limit, subject, body, "
                "namespace, html, generated_from, generated_domain FROM campaign WHERE id = %s",
                (cid,),
            )
            row = await cur.fetchone()
        if row is None:
            self._items.pop(cid, None)
            return None
        name, channel, provider, state, max_attempts, rate_limit, subject, body, ns, html = row[:10]
        first, domain = row[10:]
        template = (
            hit[1].template if hit is not None else MessageTemplate(name, subject, body, html)
        )
        info = CampaignInfo(
            cid,
            name,
            channel,
            provider,
            state,
            max_attempts,
            rate_limit,
            template,
            ns,
            None if first is None else (first, domain),
        )
        if len(self._items) > 1000:
            self._items.clear()
        self._items[cid] = (now, info)
        return info

    async def is_active(self, cid: uuid.UUID) -> bool:
        """The campaign's state read now (not cached): checked right before each send.
        When it is no longer active, the cached row is dropped too."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT state = 'active' FROM campaign WHERE id = %s", (cid,), prepare=True
            )
            row = await cur.fetchone()
        if not (row and row[0]):
            self._items.pop(cid, None)
            return False
        return True


RECIPIENT = RECIPIENT_SQL.format(first="%(first)s::int", domain="%(domain)s::text")
"""A row's address, its own or computed (a generated list's, :class:`CampaignInfo`
``generated``; parameters ``first`` and ``domain``, NULL for every other list)."""


def _generated(generated: tuple[int, str] | None) -> dict[str, object]:
    first, domain = generated if generated is not None else (None, None)
    return {"first": first, "domain": domain}


FETCH_SQL = (
    f"SELECT m.seq, {RECIPIENT}, m.attempts, m.data FROM message m "
    "WHERE m.campaign_id = %(cid)s AND m.seq >= %(start)s AND m.seq < %(end)s "
    "AND m.status = 'pending' ORDER BY m.seq LIMIT %(limit)s"
)


async def fetch_pending(
    pool: AsyncConnectionPool,
    cid: uuid.UUID,
    start: int,
    end: int,
    limit: int,
    *,
    generated: tuple[int, str] | None = None,
) -> list[PendingRow]:
    """Up to ``limit`` pending rows of ``[start, end)`` (claimed or not: the claim decides)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            FETCH_SQL,
            {"cid": cid, "start": start, "end": end, "limit": limit, **_generated(generated)},
            prepare=True,
        )
        return [PendingRow(*r) for r in await cur.fetchall()]


CLAIM_SQL = f"""
UPDATE message AS m SET claim_token = %(token)s, claim_owner = %(owner)s,
  claimed_until = now() + make_interval(secs => %(lease)s)
WHERE m.campaign_id = %(cid)s AND m.seq = ANY(%(seqs)s::int[]) AND m.status = 'pending'
  AND m.seq BETWEEN %(lo)s AND %(hi)s
  AND EXISTS (SELECT 1 FROM campaign c WHERE c.id = %(cid)s AND c.state = 'active')
  AND (
    m.claim_token IS NULL
    OR m.claimed_until < now()
    OR (m.claim_owner = %(owner)s AND m.claim_token COLLATE "C" < %(horizon)s COLLATE "C"
        AND m.claim_token <> ALL(%(live)s::text[]))
    OR (m.claim_owner <> %(owner)s AND NOT EXISTS (
      SELECT 1 FROM worker_lease w WHERE w.id = m.claim_owner
        AND greatest(w.expires_at, pg_postmaster_start_time() + make_interval(secs => %(grace)s))
            > now()))
  )
RETURNING m.seq, {RECIPIENT}, m.attempts, m.data,
  (SELECT s.reason || coalesce(': ' || s.detail, '') FROM suppression s
    WHERE s.recipient = lower({RECIPIENT}) AND s.namespace IN (%(ns)s, '*')
    ORDER BY s.namespace = '*' LIMIT 1)
"""
# One statement claims the rows just before they are sent: still pending, campaign still
# active (so cancel and suspend act within one slice), and not claimed by a live sender.
# A claim is free when it ran out, when its worker's lease ran out (that worker died or
# stalled), or when it is this worker's own and its slice had ended when this one began:
# made before it (below ``horizon``) and not running then (not in ``live``). Claims made
# after this slice began are never taken, so two runs of one chunk in one process cannot
# take each other's rows, whichever claims first (see processor.ClaimTokens). After a
# database restart every worker gets ``grace`` seconds to renew its lease first.
# The claim also looks each row's recipient up in the suppression list (its namespace's
# entries and the global ones, one index probe per row in the same statement): a
# recipient suppressed before this moment is never handed to a provider.


async def claim(
    pool: AsyncConnectionPool,
    cid: uuid.UUID,
    seqs: Sequence[int],
    *,
    token: str,
    owner: str,
    live: Sequence[str],
    horizon: str,
    lease_seconds: float,
    grace_seconds: float,
    namespace: str = "",
    generated: tuple[int, str] | None = None,
) -> list[PendingRow]:
    """Claim ``seqs`` for one send; returns the claimed rows (in seq order), those whose
    recipient is suppressed in ``namespace`` (or everywhere) marked with the reason."""
    if not seqs:
        return []
    async with pool.connection() as conn:
        cur = await conn.execute(
            CLAIM_SQL,
            {
                "token": token,
                "owner": owner,
                "lease": lease_seconds,
                "cid": cid,
                "seqs": list(seqs),
                "lo": min(seqs),
                "hi": max(seqs),
                "live": list(live),
                "horizon": horizon,
                "grace": grace_seconds,
                "ns": namespace,
                **_generated(generated),
            },
            prepare=True,
        )
        rows = [PendingRow(*r) for r in await cur.fetchall()]
    rows.sort(key=lambda r: r.seq)
    return rows


async def release(pool: AsyncConnectionPool, cid: uuid.UUID, token: str) -> None:
    """Drop a claim whose rows were not handed to a provider."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE message SET claim_token = NULL, claim_owner = NULL, claimed_until = NULL "
            "WHERE campaign_id = %s AND claim_token = %s AND status = 'pending'",
            (cid, token),
        )


UPDATE_SQL = """
UPDATE message AS m SET
  status = u.status,
  attempts = m.attempts + u.inc,
  last_error = u.err,
  provider = u.provider,
  provider_message_id = coalesce(u.pid, m.provider_message_id),
  sent_at = CASE WHEN u.status = 'sent' THEN now() ELSE m.sent_at END,
  updated_at = now(),
  claim_token = NULL, claim_owner = NULL, claimed_until = NULL
FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::text[], %s::int[])
  AS u(seq, status, err, provider, pid, inc)
WHERE m.campaign_id = %s AND m.seq BETWEEN %s AND %s AND m.seq = u.seq
  AND m.claim_token = %s
  AND (m.status = 'pending' OR (m.status = 'cancelled' AND u.status = 'sent'))
"""
# The seq bounds keep the index scan to the batch's own range: without them the
# planner hash-joins against every pending row of the campaign (30 ms per batch of
# 500 on a 100,000-message campaign instead of well under 1 ms). Only the claim's
# holder writes; a send accepted after the campaign was cancelled is still recorded.


def storable(text: str | None) -> str | None:
    """``text`` as a Postgres text column takes it: without NUL characters, and with what
    UTF-8 cannot encode (lone surrogates, as undecodable bytes become) replaced by ``?``."""
    if text is None:
        return None
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})
"""Errors that pass by themselves: connection exceptions, transaction rollbacks (deadlock,
serialization failure), insufficient resources, object not in prerequisite state (a lock
not available), operator intervention (shutdown, cancel) and system errors."""


def transient(exc: BaseException) -> bool:
    """Whether the same write may succeed later: the database could not be reached, or it
    did not finish the statement for reasons of its own. Anything else (a constraint, data
    it does not take, a program limit, a bug) will fail again."""
    if isinstance(exc, (psycopg.InterfaceError, PoolTimeout, DatabaseUnavailable)):
        return True
    if isinstance(exc, psycopg.OperationalError):
        return exc.sqlstate is None or exc.sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
    return False


async def refused(
    pool: AsyncConnectionPool,
    cid: uuid.UUID,
    token: str,
    writes: Sequence[Write],
    exc: BaseException,
) -> None:
    """Outcomes the database refused for good: logged at ERROR and their claim released, so
    that the rows are sent again rather than held (a duplicate of what was sent, in place of
    a message never recorded)."""
    log.error(
        "campaign %s: the database refused %d outcome(s) for good, not recorded; their "
        "rows are released and will be sent again: %s: %s",
        cid,
        len(writes),
        type(exc).__name__,
        exc,
    )
    try:
        await release(pool, cid, token)
    except Exception as err:  # they wait for this worker's next run or the claim lease
        log.warning("campaign %s: claim %s not released: %s", cid, token, err)


COUNTER_SQL = """
UPDATE campaign SET sent_count = sent_count + %s, failed_count = failed_count + %s,
  updated_at = now() WHERE id = %s
"""


async def write_once(
    pool: AsyncConnectionPool,
    cid: uuid.UUID,
    token: str,
    writes: Sequence[Write],
    *,
    counter: bool = False,
) -> int:
    """Record outcomes of one claim in one statement (no retry).

    ``counter`` (benchmarks only) also bumps the campaign's counters in the same
    transaction, as the reference service did per message: a hot row.
    """
    if not writes:
        return 0
    params = (
        [w.seq for w in writes],
        [w.status for w in writes],
        [storable(w.error) for w in writes],
        [w.provider for w in writes],
        [storable(w.provider_id) for w in writes],
        [0 if w.throttled or w.status == "suppressed" else 1 for w in writes],
        cid,
        min(w.seq for w in writes),
        max(w.seq for w in writes),
        token,
    )
    async with pool.connection() as conn:
        if not counter:
            cur = await conn.execute(UPDATE_SQL, params, prepare=True)
            return cur.rowcount
        async with conn.transaction():
            cur = await conn.execute(UPDATE_SQL, params, prepare=True)
            sent = sum(w.status == "sent" for w in writes)
            failed = sum(w.status == "failed" for w in writes)
            await conn.execute(COUNTER_SQL, (sent, failed, cid), prepare=True)
            return cur.rowcount


async def write(
    pool: AsyncConnectionPool,
    cid: uuid.UUID,
    token: str,
    writes: Sequence[Write],
    *,
    retry_seconds: float,
    counter: bool = False,
) -> int:
    """:func:`write_once`, retried through database outages (and deadlocks, serialization
    failures: :func:`transient`) for ``retry_seconds``."""
    deadline = time.monotonic() + retry_seconds
    delay = 0.2
    while True:
        try:
            return await write_once(pool, cid, token, writes, counter=counter)
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            if not transient(exc):
                raise
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(f"status write failed: {exc}") from exc
            log.warning("status write failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
