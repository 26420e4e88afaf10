"""Processing of one chunk job: slices paced by the shared quota, claimed, sent, recorded.

A job walks its chunk's pending rows in seq order (``cursor``) and sends them in
slices. Through a provider with a quota, or for a campaign with a
``rateLimit``, each slice is granted by the shared scheduler
(:mod:`.quota`); when the answer is "not now" the job goes back to the queue,
delayed until its quota frees, with its cursor, and holds nothing meanwhile.
Without limits a slice is a whole write batch.

Each slice is claimed just before it is sent (:func:`store.claim`, one UPDATE
that checks the rows are pending, unclaimed by a live sender, and the campaign
active), then rendered, sent, and recorded by the claim's holder. The claim reads each
recipient's suppression entry too: a suppressed recipient's message is recorded
``suppressed`` with the reason and never rendered or sent. Transient
failures stay ``pending`` with ``attempts`` counted; when the pass over the
chunk ends with some, the job raises so BullMQ retries it with exponential
backoff. Throttling answers do not count as attempts: they lower the
provider's rate and the slice is sent again at the new pace. On the job's last
attempt, or when a message has used all its attempts, a transient failure
becomes final.

Failover (:mod:`.breaker`): a ``provider: auto`` campaign's run whose primary is
down goes to the primary's secondary. Messages that find the primary down just
as its breaker opens are recorded ``pending`` without spending an attempt and
sent again through the secondary in the same pass (a new claim, so the claim
rules that keep a message from being sent twice hold as for any send); each row
records the provider that sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from bullmq import DelayedError, UnrecoverableError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from notifq.core import recipients as rcpt
from notifq.core.errors import DatabaseUnavailable, OutcomesRefused
from notifq.core.jobs import ChunkJob
from notifq.core.queue import failover_key
from notifq.core.renderpool import Limits, RenderPool
from notifq.core.settings import WorkerSettings
from notifq.worker import metrics, store
from notifq.worker.breaker import Failover
from notifq.worker.ceilings import Ceilings
from notifq.worker.headers import MailHeaders
from notifq.worker.lease import WorkerLease
from notifq.worker.outbox import Outbox
from notifq.worker.providers import Outbound, Outcome, Provider
from notifq.worker.quota import Admission, QuotaScheduler
from notifq.worker.render import render_rows

log = logging.getLogger(__name__)

UNLIMITED_QUOTA = 1e9
"""The provider rate the scheduler plans with when only the campaign has a limit."""
DB_RETRY_DELAY = 2.0
"""Seconds a job waits in the queue when the database does not answer."""
FAILOVER_COUNT_TTL = 14 * 24 * 3600
"""Seconds a campaign's failover counts stay in Redis after their last change."""
THROTTLED_DELAY = 1.0
"""Seconds a job waits after a Throttling answer from a provider without a planned rate."""

DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, DatabaseUnavailable)


class RetryLater(Exception):
    """Some messages of the chunk failed transiently; BullMQ retries the job with backoff."""


@dataclass
class Pass:
    """What one run of a job did, and where it stopped."""

    cursor: int
    counts: dict[str, int] = field(
        default_factory=lambda: {"sent": 0, "failed": 0, "retry": 0, "skipped": 0}
    )
    give_back: float | None = None
    """Seconds until the job should run again (quota, database), or None: pass finished."""
    reason: str = ""
    busy: int = 0
    """Rows that another live sender held when this job came to them."""
    ended: str = ""
    """Why the pass stopped reading rows (logged when it sent nothing)."""


@dataclass
class Slice:
    """Outcome of one claimed and sent slice."""

    claimed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    throttled: list[int] = field(default_factory=list)
    rerouted: list[int] = field(default_factory=list)
    """Found the provider down as its breaker opened: to be sent through the secondary."""
    exhausted: str | None = None
    give_back: tuple[float, str] | None = None
    """Not sent: (seconds until the job should run again, why)."""


Claimed = tuple[list[store.PendingRow], list[Outbound], list[store.Write]]
"""A claimed slice: its rows, their rendered messages, and the rows not to send (failed to
render, or suppressed)."""
Sent = tuple[list[store.PendingRow], list[Outcome], list[store.Write]]
"""A sent slice: its rows, the provider's answers, and the rows that failed to render."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at sending a slice: its rows, the claim token, and what the claim may skip."""

    camp: store.CampaignInfo
    provider: str
    rows: list[store.PendingRow]
    token: str
    live: list[str]
    """Claim tokens this process's running slices (and its outbox) held when this attempt
    began; with ``horizon``, see :class:`ClaimTokens`."""
    horizon: str
    """Tokens below it were made before this attempt began."""
    epoch: int
    """The worker lease's epoch when the attempt began (a lapse since voids it)."""


@dataclass(frozen=True, slots=True)
class GiveBack:
    """Not now: give the job back to the queue for ``seconds`` (``reason`` for metrics)."""

    seconds: float
    reason: str


class Gate:
    """The quota check of one slice: a slot booked in the shared schedule, or not now.

    A booking names the moment the slice may leave (at most ``hold`` ahead); the
    caller claims and renders meanwhile and sends at that moment, so sends reach
    the provider spaced as the schedule booked them and a late wake-up loses no
    slot to the others. A slice that would leave later than ``tolerance`` after
    its slot (its process stalled) is booked again instead of bunching up with
    the slots after it. Right before the send, :meth:`admit` checks the sliding
    1-second windows of actual sends (provider and campaign): the bound holds
    however late a process woke or how the slots were kept.
    """

    def __init__(
        self,
        scheduler: QuotaScheduler,
        settings: WorkerSettings,
        provider: str,
        quota: float,
        camp: store.CampaignInfo,
        ns_share: float | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.ns_share = ns_share
        """The namespace's NotifqPolicy share of the provider's quota (a fraction)."""
        self.provider = provider
        self.quota = quota or UNLIMITED_QUOTA
        self.camp = camp
        self.hold = settings.quota_hold_ms / 1000
        self.tolerance = settings.quota_tolerance_ms / 1000
        self.slot = 0.0
        """The last booked slot on Redis's clock (seconds)."""
        self.size = scheduler.slice_size(self.quota, camp.rate_limit)
        self.window = scheduler.window(
            provider, quota, camp.id, camp.rate_limit, camp.namespace, ns_share
        )

    async def admit(self, n: int) -> Admission | GiveBack:
        """The last check, right before the send: ``n`` sends admitted to the windows now
        (after a short wait in place if needed), or give the job back."""
        held = 0.0
        while True:
            admitted = await self.scheduler.admit(self.window, n)
            if admitted.n:
                return admitted
            metrics.WINDOW_WAITS.labels(self.provider).inc()
            if admitted.wait > self.hold - held:
                return GiveBack(admitted.wait, "window")
            held += admitted.wait
            await asyncio.sleep(admitted.wait)

    async def answered(self, admitted: Admission, *, sent: bool) -> None:
        """The admitted sends were answered by the provider (or, not ``sent``, never left).

        Never raises: it is bookkeeping, and after a send the outcomes must be written
        whatever Redis answers. Sends not marked answered keep their room in the windows
        until it expires (``WINDOW_TTL_MS``): the quota bound holds, the pace is lower."""
        try:
            await self.scheduler.answered(self.window, admitted, sent=sent)
        except Exception as exc:
            log.warning(
                "campaign %s: quota windows not told that %d send(s) through %s were %s "
                "(their room frees when it expires): %s",
                self.camp.id,
                admitted.n,
                self.provider,
                "answered" if sent else "not made",
                exc,
            )

    async def book(self, n: int, missed: float | None = None) -> float | GiveBack:
        """The booked slot for ``n`` sends (``time.monotonic()`` clock), or give the job back.
        ``missed``: the slot this slice could not use (it came too late)."""
        held = 0.0
        while True:
            asked = time.monotonic()
            grant = await self.scheduler.reserve(
                self.provider,
                self.quota,
                self.camp.id,
                self.camp.namespace,
                want=n,
                cap=self.camp.rate_limit,
                missed=missed,
                ns_share=self.ns_share,
            )
            missed = None
            if grant.granted >= n:
                self.slot = grant.at
                # the Redis clock read happened between asking and the answer
                return (asked + time.monotonic()) / 2 + grant.wait
            if grant.granted:  # paused or resized meanwhile: take it next time
                return GiveBack(0.001, grant.reason or "resized")
            if grant.wait <= self.hold - held and not grant.reason.startswith("paused"):
                held += grant.wait  # about to free: wait in place, briefly
                await asyncio.sleep(grant.wait)
                continue
            # back to the queue, due a little early: the queue wakes delayed jobs late
            return GiveBack(max(0.001, grant.wait - self.hold), grant.reason)

    async def at_slot(self, slot: float, n: int) -> GiveBack | None:
        """Wait for the booked ``slot``; None when it is time to send, else give the job back."""
        while True:
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() - slot <= self.tolerance:
                return None
            metrics.LATE_SLOTS.labels(self.provider).inc()
            booked = await self.book(n, missed=self.slot)
            if isinstance(booked, GiveBack):
                return booked
            slot = booked


def resume_cursor(data: dict[str, Any], chunk: ChunkJob) -> int:
    """Where a job given back mid-chunk resumes (the chunk's start for a fresh attempt)."""
    cursor = data.get("cursor")
    if isinstance(cursor, int) and chunk.start <= cursor <= chunk.end:
        return cursor
    return chunk.start


def same_provider_run(
    camp: store.CampaignInfo, rows: list[store.PendingRow], smtp_domains: frozenset[str]
) -> tuple[str, list[store.PendingRow]]:
    """The provider of the first row, and the leading rows that go through it."""
    provider = rcpt.route(camp.channel, camp.provider, rows[0].recipient, smtp_domains)
    if camp.provider != "auto" or camp.channel != "email":
        return provider, rows
    for i, r in enumerate(rows):
        if rcpt.route(camp.channel, camp.provider, r.recipient, smtp_domains) != provider:
            return provider, rows[:i]
    return provider, rows


def warn_unanswered(
    camp: store.CampaignInfo,
    chunk: int,
    provider: str,
    rows: list[store.PendingRow],
    outcomes: list[Outcome],
    not_sent: list[store.Write],
) -> None:
    """Warn when a provider answered for fewer messages than it was given. Nothing is
    written for the others: they stay claimed, and this worker's next run of the chunk
    takes them again at once (:class:`ClaimTokens`), another worker once the claim lease
    ran out."""
    answered = {o.seq for o in outcomes} | {w.seq for w in not_sent}
    missing = sum(r.seq not in answered for r in rows)
    if missing:
        given = len(rows) - len(not_sent)
        log.warning(
            "campaign %s (%s) chunk %d: provider %s answered %d of %d message(s); the %d "
            "unanswered stay claimed until a later run of the chunk takes them",
            camp.id,
            camp.name,
            chunk,
            provider,
            given - missing,
            given,
            missing,
        )


class InFlight:
    """Messages handed to providers and not answered yet, at most ``limit`` per process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[None]:
        n = min(n, self.limit)
        async with self._changed:
            await self._changed.wait_for(lambda: self.used + n <= self.limit)
            self.used += n
        try:
            yield
        finally:
            async with self._changed:
                self.used -= n
                self._changed.notify_all()


class ClaimTokens:
    """This process's claim tokens: ordered by when they were made, and the running ones.

    A claim of this process is free to take again when its slice ended without writing or
    releasing it (an error in between). Which ended is decided from a snapshot: a token
    made before the snapshot (below its ``horizon``) and not running at that moment had
    ended by then, so whatever it still holds is left over. A token made after the
    snapshot is never taken, whether it runs or not: two runs of one chunk (BullMQ
    delivers a job at least once) never take each other's fresh claims, whichever of
    them claims first. (A list of running tokens alone, read when a slice begins, misses
    the ones made after it: both runs then sent the same rows.)
    """

    def __init__(self) -> None:
        self._made = 0
        self.running: set[str] = set()

    def new(self) -> str:
        """A token that sorts after every earlier one (16 hex digits, then random)."""
        self._made += 1
        token = f"{self._made:016x}{uuid.uuid4().hex[:16]}"
        self.running.add(token)
        return token

    def horizon(self) -> str:
        """Every token made so far sorts below it except the newest."""
        return f"{self._made:016x}"

    def ended(self, token: str) -> None:
        self.running.discard(token)


class ChunkProcessor:
    def __init__(
        self,
        settings: WorkerSettings,
        pool: AsyncConnectionPool,
        providers: dict[str, Provider],
        scheduler: QuotaScheduler,
        ceilings: Ceilings,
        lease: WorkerLease,
        outbox: Outbox,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.providers = providers
        self.scheduler = scheduler
        self.ceilings = ceilings
        self.lease = lease
        self.outbox = outbox
        self.renderer = RenderPool(Limits.from_settings(settings))
        self.headers = MailHeaders(settings)
        self.campaigns = store.CampaignCache(pool)
        self.in_flight = InFlight(settings.max_in_flight)
        self.smtp_domains = frozenset(d.lower() for d in settings.smtp_domains)
        self.failover = Failover(settings)
        self.tokens = ClaimTokens()
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def drained(self, quiet: float = 0.3) -> None:
        """Wait until no job is being processed (and none started for ``quiet`` seconds)."""
        while True:
            await self._idle.wait()
            await asyncio.sleep(quiet)
            if self._idle.is_set():
                return

    async def __call__(self, job: Any, token: str) -> dict[str, int]:
        try:
            chunk = ChunkJob.from_data(job.data)
        except Exception as exc:
            metrics.BAD_JOBS.inc()
            log.error("job %s has an unreadable payload, failed for good: %s", job.id, exc)
            raise UnrecoverableError(f"unreadable job payload: {exc}") from exc
        max_job_attempts = int(job.opts.get("attempts", 1))
        last_attempt = job.attemptsMade + 1 >= max_job_attempts
        cursor = resume_cursor(job.data, chunk)
        self.active += 1
        self._idle.clear()
        try:
            try:
                done = await self.process(chunk, cursor, last_attempt=last_attempt)
            except DB_ERRORS as exc:
                log.warning("chunk %s: database unavailable (%s); job given back", job.id, exc)
                done = Pass(cursor, give_back=DB_RETRY_DELAY, reason="database")
        finally:
            self.active -= 1
            if self.active == 0:
                self._idle.set()
        if done.give_back is not None:
            metrics.JOBS.labels("delayed").inc()
            metrics.QUOTA_DELAYS.labels(done.reason.split(":")[0] or "other").inc()
            await job.updateData({**job.data, "cursor": done.cursor})
            await job.moveToDelayed(int((time.time() + done.give_back) * 1000) + 1, token)
            raise DelayedError(f"given back for {done.give_back:.3f}s ({done.reason})")
        metrics.JOBS.labels("retry" if done.counts["retry"] else "done").inc()
        if not (done.counts["sent"] or done.counts["failed"] or done.counts["retry"]):
            # a run that sent nothing is rare (the operator adds jobs for pending rows only):
            # say why, so that a stuck chunk explains itself
            log.info(
                "chunk %s (attempt %d, from %d): nothing sent; %d skipped, %d held by "
                "another sender; stopped at: %s",
                job.id,
                job.attemptsMade + 1,
                cursor,
                done.counts["skipped"],
                done.busy,
                done.ended or "a slice",
            )
        elif done.busy:
            log.info("chunk %s: %d message(s) held by another sender", job.id, done.busy)
        if "cursor" in job.data:
            await job.updateData({k: v for k, v in job.data.items() if k != "cursor"})
        if done.counts["retry"]:
            raise RetryLater(
                f"{done.counts['retry']} message(s) of chunk {chunk.chunk} failed "
                "transiently; retrying with backoff"
            )
        return done.counts

    async def process(self, chunk: ChunkJob, cursor: int, *, last_attempt: bool) -> Pass:
        """Send the chunk's pending messages from ``cursor`` on, as far as quota allows."""
        done = Pass(cursor)
        rows: list[store.PendingRow] = []
        while True:
            camp = await self.campaigns.get(chunk.campaign_id)
            if camp is None or camp.state != "active":
                done.ended = "no campaign row" if camp is None else f"campaign {camp.state}"
                done.counts["skipped"] += chunk.end - done.cursor
                done.busy = 0
                done.cursor = chunk.end
                return done
            if not rows:
                if done.cursor >= chunk.end:
                    done.ended = "end of chunk"
                    break
                rows = await store.fetch_pending(
                    self.pool,
                    camp.id,
                    done.cursor,
                    chunk.end,
                    self.settings.write_batch,
                    generated=camp.generated,
                )
                if not rows:
                    done.ended = f"no pending row in [{done.cursor}, {chunk.end})"
                    done.cursor = chunk.end
                    break
            primary, run = same_provider_run(camp, rows, self.smtp_domains)
            provider = (
                self.failover.route(camp.channel, primary) if camp.provider == "auto" else primary
            )
            quota = self.ceilings.get(provider)
            gate: Gate | None = None
            if quota or camp.rate_limit:
                share = (  # a share of a provider with a quota (of none: no cap)
                    await self.scheduler.namespace_share(camp.namespace, provider)
                    if quota
                    else None
                )
                gate = Gate(self.scheduler, self.settings, provider, quota, camp, share)
                run = run[: gate.size]
            result = await self._send_slice(
                camp, provider, primary, run, last_attempt, gate, chunk=chunk.chunk
            )
            if result.give_back is not None:
                done.give_back, done.reason = result.give_back
                return done  # the slice was not sent; the cursor stays before it
            for k, v in result.counts.items():
                done.counts[k] = done.counts.get(k, 0) + v
            done.busy += len(run) - result.claimed
            rows = rows[len(run) :]
            done.cursor = run[-1].seq + 1
            if result.exhausted is not None:
                done.cursor = min(result.throttled)
                await self.scheduler.pause(
                    provider, self.settings.ses_quota_interval, result.exhausted
                )
                done.give_back, done.reason = self.settings.ses_quota_interval, "exhausted"
                return done
            if result.rerouted:  # again at once, through the secondary
                done.cursor = min(result.rerouted)
                rows = []
            if result.throttled:
                done.cursor = min(result.throttled + result.rerouted)
                rows = []
                if quota:
                    await self.scheduler.throttled(provider, quota)
                else:
                    done.give_back, done.reason = THROTTLED_DELAY, "throttled"
                    return done
        # Rows another live sender held (done.busy) are left to it: when it records them
        # they are final; if it died, the operator's sweep re-adds this chunk's job once
        # this one has completed, and a later run claims them after the lease ran out.
        return done

    async def _send_slice(
        self,
        camp: store.CampaignInfo,
        provider_name: str,
        primary: str,
        rows: list[store.PendingRow],
        last_attempt: bool,
        gate: Gate | None,
        *,
        chunk: int,
    ) -> Slice:
        """Claim, render, pass the quota gate, send and record one slice of ``chunk`` (through
        ``provider_name``: ``primary``, or its secondary while it is down)."""
        token = self.tokens.new()
        live = list(self.tokens.running | self.outbox.tokens())
        epoch = self.lease.epoch
        try:
            attempt = Attempt(camp, provider_name, rows, token, live, self.tokens.horizon(), epoch)
            if gate is None:
                sent = await self._send_unpaced(attempt)
            else:
                sent = await self._send_paced(attempt, gate)
            if isinstance(sent, Slice):
                return sent
            claimed, outcomes, render_failures = sent
            if provider_name in self.providers:
                warn_unanswered(camp, chunk, provider_name, claimed, outcomes, render_failures)
            self.failover.record(provider_name, outcomes)
            if provider_name != primary and outcomes:
                metrics.FAILOVER.labels(camp.channel, primary, provider_name).inc(len(outcomes))
                await self._count_failover(camp.id, f"{primary}>{provider_name}", outcomes)
            reroute = (
                provider_name == primary
                and camp.provider == "auto"
                and any(o.down for o in outcomes)
                and self._reroutes(camp, primary, claimed, outcomes, last_attempt)
            )
            return await self._deliver(
                camp,
                provider_name,
                claimed,
                outcomes,
                render_failures,
                token,
                last_attempt=last_attempt,
                reroute=reroute,
            )
        finally:
            self.tokens.ended(token)

    def _reroutes(
        self,
        camp: store.CampaignInfo,
        primary: str,
        rows: list[store.PendingRow],
        outcomes: list[Outcome],
        last_attempt: bool,
    ) -> bool:
        """Whether the messages that found ``primary`` down go to its secondary at once.
        A message on its last attempt opens the primary's breaker rather than fail."""
        if self.failover.secondary(camp.channel, primary) is None:
            return False
        attempts = {r.seq: r.attempts for r in rows}
        if last_attempt or any(
            o.down and attempts[o.seq] + 1 >= camp.max_attempts for o in outcomes
        ):
            self.failover.breaker(primary).trip("a message found it down on its last attempt")
        return self.failover.reroutes(camp.channel, primary)

    async def _count_failover(self, cid: uuid.UUID, pair: str, outcomes: list[Outcome]) -> None:
        """Count the campaign's messages the secondary accepted, for ``status.failover``
        (before their rows are written: the status that shows them all sent counts them)."""
        sent = sum(o.result == "sent" for o in outcomes)
        if not sent:
            return
        key = failover_key(self.settings.queue_prefix, cid)
        try:
            async with self.scheduler.redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(key, pair, sent)
                pipe.expire(key, FAILOVER_COUNT_TTL)
                await pipe.execute()
        except Exception as exc:  # a count for the status; the rows are the record
            log.warning("campaign %s: failover count not kept: %s", cid, exc)

    async def _claim(self, a: Attempt) -> Claimed | None:
        """Claim the slice's rows that are still sendable, and render them."""
        claimed = await store.claim(
            self.pool,
            a.camp.id,
            [r.seq for r in a.rows],
            token=a.token,
            owner=self.lease.id,
            live=a.live,
            horizon=a.horizon,
            lease_seconds=self.settings.claim_lease_seconds,
            grace_seconds=self.lease.grace,
            namespace=a.camp.namespace,
            generated=a.camp.generated,
        )
        if not claimed:
            return None
        suppressed = [
            store.Write(r.seq, "suppressed", f"suppressed: {r.suppressed}"[:1000], "none", None)
            for r in claimed
            if r.suppressed is not None
        ]
        sendable = [r for r in claimed if r.suppressed is None] if suppressed else claimed
        outbound, render_failures = await render_rows(self.renderer, a.camp, sendable)
        outbound = self.headers.add(a.provider, a.camp.namespace, outbound)
        return claimed, outbound, [*suppressed, *render_failures]

    async def _send_unpaced(self, a: Attempt) -> Sent | Slice:
        """A slice with no quota: claimed and rendered before it waits for room in flight, so
        claim, render and send of a process's slices overlap."""
        got = await self._claim(a)
        if got is None:
            return Slice()
        claimed, outbound, render_failures = got
        async with self.in_flight.hold(len(outbound)):
            # The campaign's row is read again once there is room in flight: a cancel,
            # suspend or delete committed while this slice was rendered or waited for room
            # stops it here, so after a stop only what was already in flight goes out. The
            # lease check comes last, right before the send: a worker that stalled sends
            # nothing another may have taken over.
            if outbound and not await self.campaigns.is_active(a.camp.id):
                return await self._unsent(a, None)
            if not self.lease.valid(since=a.epoch):
                return await self._unsent(a, GiveBack(1.0, "lease"))
            outcomes = await self._provider_send(a, outbound)
        return claimed, outcomes, render_failures

    async def _send_paced(self, a: Attempt, gate: Gate) -> Sent | Slice:
        """A slice under a quota: a slot is booked first (a slice that must wait for quota has
        claimed nothing), the rows are claimed and rendered while the slot comes, and the
        send leaves at the slot once the last window check admits it."""
        async with self.in_flight.hold(len(a.rows)):
            booked = await gate.book(len(a.rows))
            if isinstance(booked, GiveBack):
                return Slice(give_back=(booked.seconds, booked.reason))
            got = await self._claim(a)
            if got is None:
                return Slice()
            claimed, outbound, render_failures = got
            if not outbound:
                if not self.lease.valid(since=a.epoch):
                    return await self._unsent(a, GiveBack(1.0, "lease"))
                return claimed, [], render_failures
            late = await gate.at_slot(booked, len(outbound))
            if late is not None:
                return await self._unsent(a, late)
            # a stop committed while the slot came stops the slice here (see _send_unpaced)
            if not await self.campaigns.is_active(a.camp.id):
                return await self._unsent(a, None)
            admitted = await gate.admit(len(outbound))
            if isinstance(admitted, GiveBack):
                return await self._unsent(a, admitted)
            if not self.lease.valid(since=a.epoch):
                await gate.answered(admitted, sent=False)
                return await self._unsent(a, GiveBack(1.0, "lease"))
            try:
                outcomes = await self._provider_send(a, outbound)
            finally:
                await gate.answered(admitted, sent=True)
        return claimed, outcomes, render_failures

    async def _unsent(self, a: Attempt, back: GiveBack | None) -> Slice:
        """Not sent: the claim is released; the job goes back for a while, or (None) the pass
        ends at its next read of the campaign's state."""
        await store.release(self.pool, a.camp.id, a.token)
        return Slice() if back is None else Slice(give_back=(back.seconds, back.reason))

    async def _provider_send(self, a: Attempt, outbound: list[Outbound]) -> list[Outcome]:
        provider = self.providers.get(a.provider)
        if provider is None or not outbound:
            return []
        metrics.IN_FLIGHT.inc(len(outbound))
        t0 = time.perf_counter()
        try:
            return await provider.send_many(a.camp.channel, outbound)
        finally:
            metrics.IN_FLIGHT.dec(len(outbound))
            metrics.SEND_SECONDS.labels(a.provider).observe(time.perf_counter() - t0)

    async def _deliver(
        self,
        camp: store.CampaignInfo,
        provider_name: str,
        rows: list[store.PendingRow],
        outcomes: list[Outcome],
        render_failures: list[store.Write],
        token: str,
        *,
        last_attempt: bool,
        reroute: bool = False,
    ) -> Slice:
        """Record a sent slice's outcomes (holding its claim); ``reroute``: the down ones go
        to the secondary at once, without spending an attempt."""
        if provider_name not in self.providers:
            writes = [
                store.Write(r.seq, "failed", f"no provider {provider_name!r}", provider_name, None)
                for r in rows
            ]
            await self._record(camp, token, writes)
            return Slice(claimed=len(rows), counts={"failed": len(rows)})
        writes, counts = self._decide(
            camp, provider_name, rows, outcomes, last_attempt=last_attempt, reroute=reroute
        )
        writes.extend(render_failures)  # and the suppressed rows, never sent
        for w in render_failures:
            counts[w.status] = counts.get(w.status, 0) + 1
        if counts.get("suppressed"):
            metrics.MESSAGES.labels(provider_name, camp.channel, "suppressed").inc(
                counts["suppressed"]
            )
        await self._record(camp, token, writes)
        throttled = [o.seq for o in outcomes if o.result in ("throttled", "exhausted")]
        rerouted = [o.seq for o in outcomes if reroute and o.down]
        exhausted = next((o.error for o in outcomes if o.result == "exhausted"), None)
        return Slice(len(rows), counts, throttled, rerouted, exhausted or None)

    async def _record(
        self, camp: store.CampaignInfo, token: str, writes: list[store.Write]
    ) -> None:
        """Write outcomes; after the retry budget they wait in the outbox (claims kept). Ones
        the database refuses for good are logged and their claim released, and the job's
        attempt fails (:class:`OutcomesRefused`)."""
        try:
            await store.write(
                self.pool,
                camp.id,
                token,
                writes,
                retry_seconds=self.settings.status_write_retry_seconds,
                counter=self.settings.naive_counter,
            )
        except DatabaseUnavailable:
            self.outbox.add(camp.id, token, writes)
            raise
        except Exception as exc:  # refused for good (store.write retries what passes)
            await store.refused(self.pool, camp.id, token, writes, exc)
            # not a DB_ERRORS one, even when exc is (a program limit): that job would be
            # given back without spending an attempt, over and over
            raise OutcomesRefused(f"campaign {camp.id}: outcomes refused: {exc}") from exc

    @staticmethod
    def _decide(
        camp: store.CampaignInfo,
        provider: str,
        rows: list[store.PendingRow],
        outcomes: list[Outcome],
        *,
        last_attempt: bool,
        reroute: bool = False,
    ) -> tuple[list[store.Write], dict[str, int]]:
        attempts = {r.seq: r.attempts for r in rows}
        writes: list[store.Write] = []
        sent = failed = retry = throttled = rerouted = 0
        for o in outcomes:
            if o.result == "sent":
                writes.append(store.Write(o.seq, "sent", None, provider, o.provider_id))
                sent += 1
            elif o.result in ("throttled", "exhausted"):
                writes.append(store.Write(o.seq, "pending", o.error, provider, None, True))
                throttled += 1
            elif reroute and o.down:
                writes.append(store.Write(o.seq, "pending", o.error, provider, None, True))
                rerouted += 1
            elif (
                o.result == "permanent" or last_attempt or attempts[o.seq] + 1 >= camp.max_attempts
            ):
                writes.append(store.Write(o.seq, "failed", o.error, provider, None))
                failed += 1
            else:
                writes.append(store.Write(o.seq, "pending", o.error, provider, None))
                retry += 1
        labels = metrics.MESSAGES.labels
        for outcome, n in (
            ("sent", sent),
            ("failed", failed),
            ("retry", retry),
            ("throttled", throttled),
            ("rerouted", rerouted),
        ):
            if n:
                labels(provider, camp.channel, outcome).inc(n)
        counts = {"sent": sent, "failed": failed, "retry": retry, "throttled": throttled}
        if rerouted:
            counts["rerouted"] = rerouted
        return writes, counts
