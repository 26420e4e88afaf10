"""Provider quotas shared by every worker: pacing, fair shares and adaptive rates.

One Lua script in Redis decides, atomically for all workers, whether a campaign
may send a slice of ``k`` messages through a provider *now*. It keeps:

- per provider a GCRA schedule (``tat``, the theoretical arrival time) at the
  provider's current rate, so sends are spaced evenly; a late sender may catch
  up by at most ``tolerance`` and never collects tokens while idle, so a
  1-second window holds at most ``rate * (1 + tolerance) + k - 1`` sends;
- per provider a registry of the campaigns asking for it (seen in the last
  ``ACTIVE_TTL_MS``), from which each campaign's fair share is computed by
  max-min water-filling: first across namespaces (each one weight), then across
  the namespace's campaigns by their weight; a campaign's own ``rateLimit``
  caps its share and the rest goes to the others;
- per campaign a GCRA schedule at its share (its ``rateLimit`` less the
  headroom when that is smaller than its fair share: such a campaign is not
  made to queue behind the provider schedule when its own turn has come, so
  bigger campaigns cannot crowd it out; its grants still count against the
  provider schedule) and
  a queue of wake-up times, so the jobs of one campaign that must wait come
  back spread over time instead of all at once (a wait shorter than
  ``hold`` takes no wake-up slot: the caller waits in place);
- the provider's current rate under AIMD: a Throttling answer multiplies it by
  ``DECREASE`` (at most once a second), every second without one adds
  ``INCREASE`` of the ceiling back; and a pause (daily quota exhausted).

When the answer is "not now", the caller gives its job back to the queue with
the time returned (``Grant.at``) and holds nothing meanwhile. The ``limits``
library (used before) keeps one counter per key; a grant that must check a
provider and a campaign schedule, the fair shares and the adaptive rate in one
atomic step does not fit it, so this is a small script of our own.

Every decision also writes the campaign's quota status to a Redis hash the
operator reads (provider rate, the campaign's share, whether and why it waits).
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from notifq.core.queue import quota_status_key

log = logging.getLogger(__name__)

ACTIVE_TTL_MS = 2000
"""A campaign that has not asked for this long no longer counts for the shares."""
SHARE_SLACK = 1.0
"""How far above its fair share an uncapped campaign may run (1.0: not at all; more lets
big campaigns crowd out small ones when they compete for the provider's schedule)."""
DECREASE = 0.9
INCREASE = 0.05
STATUS_TTL_MS = 15_000


_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local cid, ns, pname = ARGV[1], ARGV[2], ARGV[11]
local weight, cap, want = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local ceiling, kmax, tol = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local ttl, slack, increase = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[12])
local hold = tonumber(ARGV[14])

local p = redis.call('HMGET', KEYS[1], 'rate', 'tat', 'changed', 'paused_until', 'pause_reason')
local rate = tonumber(p[1]) or ceiling
local tat_p = tonumber(p[2]) or 0
local changed = tonumber(p[3]) or now
local paused = tonumber(p[4]) or 0
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
redis.call('HSET', KEYS[3], cid, ns .. '\\t' .. weight .. '\\t' .. cap)
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
local groups, spaces = {}, {}
for i, id in ipairs(ids) do
  local m = metas[i]
  if m then
    local a, b, c = string.match(m, '^(.-)\\t(.-)\\t(.-)$')
    local g = groups[a]
    if not g then
      g = {}
      groups[a] = g
    end
    table.insert(g, {id = id, w = tonumber(b), cap = tonumber(c)})
  end
end
for name, g in pairs(groups) do
  local sum = 0
  for _, it in ipairs(g) do
    if it.cap > 0 and sum >= 0 then sum = sum + it.cap else sum = -1 end
  end
  table.insert(spaces, {name = name, w = 1, cap = math.max(sum, 0)})
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
local c = redis.call('HMGET', KEYS[4], 'tat', 'wake')
local tat_c = tonumber(c[1]) or 0
local wake_c = tonumber(c[2]) or 0
local k = math.min(want, kmax)
if cap > 0 then k = math.min(k, math.max(1, math.floor(cap / 10))) end
local tol_c = tol
if capped then tol_c = 0 end

local granted, at, reason = 0, now, ''
if paused > now then
  at = paused
  reason = 'paused: ' .. (p[5] or 'provider paused')
elseif (tat_p <= now or capped) and tat_c <= now then
  granted = k
  tat_p = math.max(tat_p, now - tol) + k * 1000 / rate
  tat_c = math.max(tat_c, now - tol_c) + k * 1000 / eff
else
  local free = math.max(tat_p, tat_c)
  if free - now <= hold then
    at = free
  else
    at = math.max(wake_c, free)
    wake_c = at + k * 1000 / eff
  end
  if tat_c > tat_p then
    if capped then reason = 'rateLimit' else reason = 'share' end
  else
    reason = 'provider'
  end
end

redis.call('HSET', KEYS[1], 'rate', rate, 'tat', tat_p, 'changed', changed, 'ceiling', ceiling)
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
class Grant:
    """The scheduler's answer: ``granted`` sends now, or come back at ``at``."""

    granted: int
    at: float
    """Redis clock, seconds: when to ask again (``now`` when granted)."""
    now: float
    rate: float
    """The provider's current rate (sends/s)."""
    share: float
    """The campaign's share of it (sends/s)."""
    reason: str
    """Why not now: ``provider``, ``share``, ``rateLimit`` or ``paused: ...``."""

    @property
    def wait(self) -> float:
        """Seconds until the quota frees."""
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
        self._throttled = redis.register_script(_THROTTLED)
        self._pause = redis.register_script(_PAUSE)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, "quota", *parts))

    def effective_cap(self, cap: float | None) -> float:
        """A campaign's ``rateLimit`` as the script plans with it (less the headroom; 0: none)."""
        return (cap or 0) * (1 - self.headroom)

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
        # grants of k spaced k/rate apart put at most rate * (1 + tolerance) + k - 1 sends
        # in any 1-second window
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
    ) -> Grant:
        """Ask to send up to ``want`` messages of campaign ``cid`` through ``provider`` now."""
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
