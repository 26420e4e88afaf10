"""Provider quotas shared by every worker: pacing, fair shares and adaptive rates.

One Lua script in Redis books, atomically for all workers, the moment a campaign
may send a slice of ``k`` messages through a provider: a *slot* at most ``hold``
ahead, or "not now, ask again at ...". It keeps:

- per provider a GCRA schedule (``tat``, the next free slot) at the provider's
  current rate: each booking takes the next slot and moves ``tat`` on by
  ``k / rate``, so slots are spaced evenly and never collected while idle. The
  caller claims and renders while its slot comes, then sends at it; a sender
  that is late by more than ``tolerance`` books again instead of sending, so a
  1-second window holds at most ``rate * (1 + tolerance) + k - 1`` sends (the
  missed slot is taken back when nobody booked after it, so the slice goes out
  at once instead of a whole step later: sends only come later for it). A
  booking made ahead is not lost when its job wakes a little late (a grant
  that had to be asked for again at the moment the quota freed was);
- per provider a registry of the campaigns asking for it (seen in the last
  ``ACTIVE_TTL_MS``), from which each campaign's fair share is computed by
  max-min water-filling: first across namespaces (each one weight), then across
  the namespace's campaigns by their weight; a campaign's own ``rateLimit``
  caps its share and the rest goes to the others. A namespace's NotifqPolicy
  share (``providerSharePercent``, published by the operator in Redis) caps the
  namespace's part the same way, as a strict cap: its campaigns book on their own
  schedules at their part of it and never take the provider's idle slots (the rest
  of the quota goes to the other namespaces, or stays unused);
- per campaign a GCRA schedule at its share: a campaign more than the booking
  horizon ahead of it leaves the provider's next slot to the others, unless
  nobody has taken that slot by the time it is next (the provider's schedule
  does not idle for fairness). A campaign held to its ``rateLimit`` (less room
  for a slice, lateness and jitter) books on its own schedule instead: it is not
  made to queue behind bigger campaigns' bookings, and its slots still count
  against the provider's schedule;
- per campaign a queue of wake-up times, so the jobs of one campaign that must
  wait long go back to the queue spread over time instead of all at once, and
  per provider one for the jobs waiting in place for the horizon to move;
- the provider's current rate under AIMD: a Throttling answer multiplies it by
  ``DECREASE`` (at most once a second), every second without one adds
  ``INCREASE`` of the ceiling back; and a pause (daily quota exhausted).

Slots are how sends are spread; the bound itself comes from a second script
run right before each send (:meth:`QuotaScheduler.admit`): sliding 1-second
windows of actual sends, per provider (its quota), per namespace with a share
(its share of the quota) and per campaign (its ``rateLimit``), that admit the
send now or answer the exact time until there is room. A send counts from its
admission until one second after its answer (:meth:`QuotaScheduler.answered`), so
the provider, which counted it somewhere in between, never sees more than the
limit in a second, however late a worker woke after booking.

When the answer is "not now", the caller waits in place if that is at most
``hold`` away, else gives its job back to the queue with the time returned
(``Grant.at``) and holds nothing meanwhile. The ``limits`` library (used
before) keeps one counter per key; a booking that must check a provider and a
campaign schedule, the fair shares and the adaptive rate in one atomic step
does not fit it, so this is a small script of our own.

Every decision also writes the campaign's quota status to a Redis hash the
operator reads (provider rate, the campaign's share, whether and why it waits).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from notifq.core.policy import share_for
from notifq.core.queue import quota_status_key, share_key

log = logging.getLogger(__name__)

ACTIVE_TTL_MS = 2000
"""A campaign that has not asked for this long no longer counts for the shares."""
SHARE_SLACK = 1.0
"""How far above its fair share an uncapped campaign may run (1.0: not at all; more lets
big campaigns crowd out small ones when they compete for the provider's schedule)."""
CAMPAIGN_JITTER_MS = 50.0
"""Lateness a campaign's own ``rateLimit`` leaves room for (at least the tolerance): the
send-to-provider tail measured on a loaded 2-core machine reaches ~50 ms beyond the
tolerance checked in the worker. A campaign's limit is small (5/s: 200 ms between sends),
so this costs it ~5 %; on a provider's quota it would cost the whole target."""
LEAD_MS = 15.0
"""When the schedule is free, a slot is booked this far ahead: the time the claim and render
that follow the booking take, so that the send still leaves on time."""
PARK_MS = 2000.0
"""A job that goes back to the queue to wait for quota comes back at most this long after
its campaign's turn (the wake-up queue spreads the others)."""
WINDOW_TTL_MS = 60_000.0
"""A send admitted to a window and never answered (its worker died) counts this long."""
DECREASE = 0.9
INCREASE = 0.05
STATUS_TTL_MS = 15_000
SHARE_CACHE_S = 1.0
"""Seconds a namespace's policy shares are kept before Redis is asked again."""


_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local cid, ns, pname = ARGV[1], ARGV[2], ARGV[11]
local weight, cap, want = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local ceiling, kmax = tonumber(ARGV[6]), tonumber(ARGV[7])
local ttl, slack, increase = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[12])
local hold, lead, park = tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])
local nsfrac = tonumber(ARGV[18])

local p = redis.call('HMGET', KEYS[1], 'rate', 'tat', 'changed', 'paused_until', 'pause_reason',
  'wake')
local rate = tonumber(p[1]) or ceiling
local tat_p = tonumber(p[2]) or 0
local changed = tonumber(p[3]) or now
local paused = tonumber(p[4]) or 0
local wake_p = tonumber(p[6]) or 0
if rate > ceiling then rate = ceiling end
if rate < ceiling then
  local steps = math.floor((now - changed) / 1000)
  if steps >= 1 then
    rate = math.min(ceiling, rate + math.max(1, ceiling * increase) * steps)
    changed = now
  end
else
  changed = now
end

redis.call('ZADD', KEYS[2], now, cid)
redis.call('HSET', KEYS[3], cid, ns .. '\\t' .. weight .. '\\t' .. cap .. '\\t' .. nsfrac)
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
  redis.call('HDEL', KEYS[3], unpack(gone))
end

local function fill(total, items)
  local function ratio(x)
    if x.cap > 0 then return x.cap / x.w end
    return math.huge
  end
  table.sort(items, function(x, y) return ratio(x) < ratio(y) end)
  local wsum = 0
  for _, it in ipairs(items) do wsum = wsum + it.w end
  for _, it in ipairs(items) do
    local fair = total * it.w / wsum
    if it.cap > 0 and it.cap < fair then it.alloc = it.cap else it.alloc = fair end
    total = total - it.alloc
    wsum = wsum - it.w
  end
end

local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
local metas = redis.call('HMGET', KEYS[3], unpack(ids))
local groups, spaces, fracs = {}, {}, {}
for i, id in ipairs(ids) do
  local m = metas[i]
  if m then
    local a, b, c, d = string.match(m, '^(.-)\\t(.-)\\t(.-)\\t(.-)$')
    if not a then
      a, b, c = string.match(m, '^(.-)\\t(.-)\\t(.-)$')
      d = '0'
    end
    local g = groups[a]
    if not g then
      g = {}
      groups[a] = g
    end
    table.insert(g, {id = id, w = tonumber(b), cap = tonumber(c)})
    fracs[a] = math.max(fracs[a] or 0, tonumber(d) or 0)
  end
end
for name, g in pairs(groups) do
  local sum = 0
  for _, it in ipairs(g) do
    if it.cap > 0 and sum >= 0 then sum = sum + it.cap else sum = -1 end
  end
  local ncap = math.max(sum, 0)
  -- the namespace's policy share of the provider: a strict cap on its part
  local f = fracs[name] or 0
  if f > 0 and (ncap == 0 or f * rate < ncap) then ncap = f * rate end
  table.insert(spaces, {name = name, w = 1, cap = ncap})
end
fill(rate, spaces)
local share = rate
for _, sp in ipairs(spaces) do
  local g = groups[sp.name]
  fill(sp.alloc, g)
  for _, it in ipairs(g) do
    if it.id == cid then share = it.alloc end
  end
end

local capped = cap > 0 and share >= cap - 1e-9
local eff = share * slack
if capped or (cap > 0 and eff > cap) then eff = cap end
if nsfrac > 0 and not capped then
  -- held to its namespace's share: its own schedule at its part, never more
  capped, eff = true, math.max(share, 0.001)
end
local c = redis.call('HMGET', KEYS[4], 'tat', 'wake')
local tat_c = tonumber(c[1]) or 0
local wake_c = tonumber(c[2]) or 0
local k = math.min(want, kmax)
if cap > 0 then k = math.min(k, math.max(1, math.floor(cap / 10))) end
local step_p, step_c = k * 1000 / rate, k * 1000 / eff
local earliest = now + lead
local ahead = math.max(hold, lead)
local missed = tonumber(ARGV[17])
if missed > 0 then
  -- a slot its sender missed (too late to send): when nobody booked after it, the
  -- schedule takes it back, and the slice goes out as soon as it can instead of a
  -- whole step later; sends are never closer together for it, only later
  if math.abs(tat_c - (missed + step_c)) < 0.5 then tat_c = missed end
  if math.abs(tat_p - (missed + step_p)) < 0.5 then tat_p = missed end
end

local granted, at, reason = 0, now, ''
if paused > now then
  at = paused
  reason = 'paused: ' .. (p[5] or 'provider paused')
elseif capped then
  -- its own schedule: a campaign held to its rateLimit does not queue behind the
  -- provider's bookings (bigger campaigns cannot crowd it out); its sends still
  -- take their place in the provider's schedule
  local slot = math.max(tat_c, earliest)
  if slot - now <= ahead then
    granted, at = k, slot
    tat_c = slot + step_c
    tat_p = math.max(tat_p, earliest) + step_p
  else
    at = slot - ahead
    reason = (cap > 0 and share >= cap - 1e-9) and 'rateLimit' or 'namespace share'
  end
else
  local slot = math.max(tat_p, earliest)
  -- a campaign more than the booking horizon ahead of its share leaves the slot to the
  -- others, unless nobody has taken it by the time it is next: the provider's schedule
  -- never idles for fairness
  if tat_c - ahead > slot and slot > earliest + step_p then
    at = math.max(now + step_p, math.min(tat_c - 2 * ahead, slot - lead - step_p))
    reason = 'share'
  elseif slot - now > ahead then
    at, reason = slot - ahead, 'provider'
    if at - now <= hold then
      -- jobs waiting in place for the horizon to move come back one slot apart
      at = math.max(at, wake_p)
      if at - now <= hold then wake_p = at + step_p end
    end
  else
    granted, at = k, slot
    tat_p = slot + step_p
    tat_c = math.min(math.max(tat_c, slot), slot + ahead) + step_c
  end
end
if granted == 0 and paused <= now and at - now > hold then
  -- a long wait: the job goes back to the queue. The campaign's jobs that must wait
  -- come back spread, at least ``hold`` apart (those waiting in place keep its share
  -- busy meanwhile), and none is sent further than ``PARK_MS`` past its turn
  at = math.max(at, math.min(wake_c, at + park))
  wake_c = at + math.max(step_c, hold)
end

redis.call('HSET', KEYS[1], 'rate', rate, 'tat', tat_p, 'changed', changed, 'ceiling', ceiling,
  'wake', wake_p)
redis.call('PEXPIRE', KEYS[1], 3600000)
redis.call('PEXPIRE', KEYS[2], 3600000)
redis.call('PEXPIRE', KEYS[3], 3600000)
redis.call('HSET', KEYS[4], 'tat', tat_c, 'wake', wake_c)
redis.call('PEXPIRE', KEYS[4], 600000)
redis.call('HSET', KEYS[5], 'provider', pname, 'providerRate', rate, 'ceiling', ceiling,
  'share', eff, 'at', now)
if granted == 0 then
  redis.call('HSET', KEYS[5], 'waitedAt', now, 'reason', reason, 'waitMs', at - now)
end
redis.call('PEXPIRE', KEYS[5], ARGV[13])
return {granted, tostring(at), tostring(now), tostring(rate), tostring(eff), reason}
"""

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n, ttl = tonumber(ARGV[1]), tonumber(ARGV[3])
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 1000)
  local over = redis.call('ZCARD', key) + n - tonumber(ARGV[3 + i])
  if over > 0 then
    -- the send that must leave the window first; one still in flight leaves it a second
    -- after its answer, so a second from now at the earliest
    local e = redis.call('ZRANGE', key, over - 1, over - 1, 'WITHSCORES')
    wait = math.max(wait, math.min(tonumber(e[2]), now) + 1000 - now)
  end
end
if wait > 0 then return {0, tostring(wait)} end
local entries = {}
for j = 1, n do
  table.insert(entries, now + ttl)
  table.insert(entries, ARGV[2] .. ':' .. j)
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, unpack(entries))
  redis.call('PEXPIRE', key, ttl + 2000)
end
return {n, '0'}
"""

_ANSWERED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local entries = {}
for j = 1, tonumber(ARGV[1]) do
  table.insert(entries, now)
  table.insert(entries, ARGV[2] .. ':' .. j)
end
for _, key in ipairs(KEYS) do
  if ARGV[3] == '1' then
    redis.call('ZADD', key, 'XX', unpack(entries))
  else
    for j = 2, #entries, 2 do redis.call('ZREM', key, entries[j]) end
  end
end
return 1
"""

_THROTTLED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local p = redis.call('HMGET', KEYS[1], 'rate', 'decreased', 'ceiling')
local ceiling = tonumber(p[3]) or tonumber(ARGV[2])
local rate = tonumber(p[1]) or ceiling
if now - (tonumber(p[2]) or 0) >= 1000 then
  rate = math.max(tonumber(ARGV[3]), rate * tonumber(ARGV[1]))
  redis.call('HSET', KEYS[1], 'rate', rate, 'changed', now, 'decreased', now)
  redis.call('HINCRBY', KEYS[1], 'throttles', 1)
end
redis.call('PEXPIRE', KEYS[1], 3600000)
return tostring(rate)
"""

_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('HSET', KEYS[1], 'paused_until', now + tonumber(ARGV[1]), 'pause_reason', ARGV[2])
redis.call('PEXPIRE', KEYS[1], 3600000)
return 1
"""


@dataclass(frozen=True, slots=True)
class Window:
    """The sliding 1-second windows one send is checked against (provider, campaign)."""

    keys: list[str]
    limits: list[int]

    def __bool__(self) -> bool:
        return bool(self.keys)


@dataclass(frozen=True, slots=True)
class Admission:
    """The last check's answer: ``n`` sends admitted now (``wait`` 0), or wait ``wait`` s."""

    n: int
    wait: float
    token: str


@dataclass(frozen=True, slots=True)
class Grant:
    """The scheduler's answer: ``granted`` sends booked for ``at``, or come back at ``at``."""

    granted: int
    at: float
    """Redis clock, seconds: the booked slot when granted (send then), else when to ask
    again."""
    now: float
    rate: float
    """The provider's current rate (sends/s)."""
    share: float
    """The campaign's share of it (sends/s)."""
    reason: str
    """Why not now: ``provider``, ``share``, ``rateLimit`` or ``paused: ...``."""

    @property
    def wait(self) -> float:
        """Seconds until the booked slot, or until the quota frees."""
        return max(0.0, self.at - self.now)


class QuotaScheduler:
    """Client of the Redis-side quota scripts (one per worker process)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        burst: int,
        headroom: float,
        tolerance_ms: float,
        hold_ms: float = 0.0,
    ) -> None:
        self.redis = redis
        self.hold_ms = hold_ms
        self.prefix = prefix
        self.burst = burst
        self.headroom = headroom
        self.tolerance_ms = tolerance_ms
        self._reserve = redis.register_script(_RESERVE)
        self._admit = redis.register_script(_ADMIT)
        self._answered = redis.register_script(_ANSWERED)
        self._throttled = redis.register_script(_THROTTLED)
        self._pause = redis.register_script(_PAUSE)
        self._shares: dict[str, tuple[float, dict[str, str]]] = {}

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, "quota", *parts))

    def effective_cap(self, cap: float | None) -> float:
        """A campaign's ``rateLimit`` as the script plans with it (0: none): room left for its
        slice, a late send and jitter, as for a provider (see :meth:`planned_rate`)."""
        if not cap:
            return 0.0
        room = cap * (1 - self.headroom)
        k = max(1, math.floor(room / 10))
        jitter = max(self.tolerance_ms, CAMPAIGN_JITTER_MS) / 1000
        return max(min(cap, 0.1), (room - (k - 1)) / (1 + jitter))

    def slice_size(self, quota: float, cap: float | None = None) -> int:
        """Sends granted at once under ``quota`` (and a campaign's own ``cap``): the burst
        setting, smaller for small quotas. The script applies the same rule; a caller that
        asked for more than it grants would get part of a slice and have to give it back."""
        size = max(1, min(self.burst, int(quota // 50)))
        effective = self.effective_cap(cap)
        if effective > 0:
            size = min(size, max(1, math.floor(effective / 10)))
        return size

    def planned_rate(self, quota: float) -> float:
        """The rate planned under a provider quota: room left for a slice, catch-up and jitter,
        so that no 1-second window exceeds ``quota``."""
        # slots of k spaced k/rate apart, each sent at most ``tolerance`` late, put at most
        # rate * (1 + tolerance) + k - 1 sends in any 1-second window
        planned = (quota * (1 - self.headroom) - (self.slice_size(quota) - 1)) / (
            1 + self.tolerance_ms / 1000
        )
        return max(min(quota, 0.5), planned)

    async def reserve(
        self,
        provider: str,
        quota: float,
        cid: uuid.UUID,
        namespace: str,
        *,
        want: int,
        cap: float | None = None,
        weight: float = 1.0,
        missed: float | None = None,
        ns_share: float | None = None,
    ) -> Grant:
        """Book a slot for up to ``want`` messages of campaign ``cid`` through ``provider``;
        ``missed``: the slot (Redis clock, seconds) of this slice that came too late to use;
        ``ns_share``: the namespace's policy share of the provider (a fraction)."""
        res = await self._reserve(
            keys=[
                self._key("p", provider),
                self._key("active", provider),
                self._key("meta", provider),
                self._key("c", str(cid)),
                quota_status_key(self.prefix, cid),
            ],
            args=[
                str(cid),
                namespace,
                weight,
                self.effective_cap(cap),
                want,
                self.planned_rate(quota),
                self.slice_size(quota),
                self.tolerance_ms,
                ACTIVE_TTL_MS,
                SHARE_SLACK,
                provider,
                INCREASE,
                STATUS_TTL_MS,
                self.hold_ms,
                LEAD_MS,
                PARK_MS,
                (missed or 0) * 1000,
                ns_share or 0,
            ],
        )
        granted, at, now, rate, share, reason = res
        return Grant(
            int(granted),
            float(at) / 1000,
            float(now) / 1000,
            float(rate),
            float(share),
            reason.decode() if isinstance(reason, bytes) else str(reason),
        )

    def window(
        self,
        provider: str,
        quota: float | None,
        cid: uuid.UUID,
        cap: float | None,
        namespace: str = "",
        ns_share: float | None = None,
    ) -> Window:
        """The windows a send of campaign ``cid`` through ``provider`` must fit: the provider's
        ``quota``, the namespace's share of it (``ns_share``, a fraction) and the campaign's
        own ``cap`` (its ``rateLimit``), each when set."""
        keys: list[str] = []
        limits: list[int] = []
        ns_limit = quota * ns_share if quota and ns_share else None
        for key, limit in (
            (self._key("w", "p", provider), quota),
            (self._key("w", "n", provider, namespace), ns_limit),
            (self._key("w", "c", str(cid)), cap),
        ):
            if limit:
                keys.append(key)
                limits.append(max(1, math.floor(limit)))
        return Window(keys, limits)

    async def admit(self, window: Window, n: int) -> Admission:
        """Right before a send: admit ``n`` sends now if every window of ``window`` has room
        for them, else the exact time until it has (a lower bound while sends are in flight).

        A window counts each send from its admission until one second after its answer
        (:meth:`answered`), so wherever the provider's clock put its arrival in between, no
        1-second window at the provider holds more than the limit. A send whose answer never
        comes (its worker died) counts for ``WINDOW_TTL_MS`` and a second more.
        """
        token = uuid.uuid4().hex
        ok, wait = await self._admit(
            keys=window.keys, args=[n, token, WINDOW_TTL_MS, *window.limits]
        )
        return Admission(int(ok), float(wait) / 1000, token)

    async def answered(self, window: Window, admission: Admission, *, sent: bool) -> None:
        """The admitted sends were answered (``sent``), or never left (their room is freed)."""
        await self._answered(
            keys=window.keys, args=[admission.n, admission.token, "1" if sent else "0"]
        )

    async def namespace_share(self, namespace: str, provider: str) -> float | None:
        """The namespace's policy share of ``provider`` (a fraction; None: no cap), as the
        operator published it; read at most once per ``SHARE_CACHE_S`` per namespace."""
        now = time.monotonic()
        cached = self._shares.get(namespace)
        if cached is None or now - cached[0] > SHARE_CACHE_S:
            raw = await self.redis.hgetall(share_key(self.prefix, namespace))
            shares = {
                (k.decode() if isinstance(k, bytes) else str(k)): (
                    v.decode() if isinstance(v, bytes) else str(v)
                )
                for k, v in raw.items()
            }
            cached = (now, shares)
            self._shares[namespace] = cached
        return share_for(cached[1], provider)

    async def throttled(self, provider: str, quota: float) -> float:
        """The provider answered Throttling: lower its rate (AIMD). Returns the new rate."""
        floor = min(1.0, self.planned_rate(quota))
        rate = await self._throttled(
            keys=[self._key("p", provider)], args=[DECREASE, self.planned_rate(quota), floor]
        )
        log.warning("provider %s throttled: rate lowered to %.1f/s", provider, float(rate))
        return float(rate)

    async def pause(self, provider: str, seconds: float, reason: str) -> None:
        """Stop granting sends through ``provider`` for ``seconds`` (e.g. daily quota used up)."""
        await self._pause(keys=[self._key("p", provider)], args=[seconds * 1000, reason])
        log.warning("provider %s paused for %.0fs: %s", provider, seconds, reason)
