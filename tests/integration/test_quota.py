"""The shared quota scheduler and the quota-enforcing mock on a real Redis.

Invariants, not timings: whatever the speed of the machine, no 1-second window
(on Redis's clock) holds more booked sends than the quota, booked slots never
overlap, a slot its sender missed is taken back without bringing sends closer,
shares are fair across campaigns and namespaces, a campaign's own limit caps it
and its leftover goes to the others, Throttling lowers the rate, and the mock
never accepts more than its quota in a sliding second, even from two clients
at once.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import uuid
from pathlib import Path

import testbed
from redis.asyncio import Redis

from notifq.core.queue import quota_status_key
from notifq.core.settings import WorkerSettings
from notifq.worker.providers.base import Outbound
from notifq.worker.providers.mock import MockProvider
from notifq.worker.quota import QuotaScheduler


def _scheduler(redis: Redis, prefix: str) -> QuotaScheduler:
    return QuotaScheduler(redis, prefix, burst=4, headroom=0.02, tolerance_ms=10)


def _max_window(stamps: list[float]) -> int:
    """Most stamps within any second (stamps in seconds, compared in whole milliseconds)."""
    ms = sorted(round(t * 1000) for t in stamps)
    return max((i + 1 - bisect.bisect_right(ms, t - 1000) for i, t in enumerate(ms)), default=0)


async def test_grants_never_exceed_the_quota_in_any_second(
    redis_server: testbed.Redis,
) -> None:
    redis = Redis.from_url(redis_server.url)
    sched = _scheduler(redis, f"t{uuid.uuid4().hex[:8]}")
    quota = 50.0
    a, b = uuid.uuid4(), uuid.uuid4()
    grants: list[float] = []  # one Redis-clock stamp per booked send: its slot

    async def campaign(cid: uuid.UUID, ns: str) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + 2.5
        while loop.time() < end:
            g = await sched.reserve("mock", quota, cid, ns, want=10)
            grants.extend([g.at] * g.granted)
            if g.granted:
                assert g.at >= g.now  # a slot is booked now or ahead, never in the past
            else:
                assert g.at >= g.now and g.reason
                await asyncio.sleep(min(g.wait, 0.05))

    await asyncio.gather(campaign(a, "ns-a"), campaign(b, "ns-b"), campaign(a, "ns-a"))
    await redis.aclose()
    assert grants, "nothing was granted"
    assert _max_window(grants) <= quota  # never a burst above the quota
    assert max(grants.count(t) for t in set(grants)) <= sched.slice_size(quota)
    slots = sorted(set(grants))  # one provider schedule: slots a slice's time apart
    step = sched.slice_size(quota) / sched.planned_rate(quota)
    assert all(b - a >= step - 1e-4 for a, b in itertools.pairwise(slots))


async def test_a_missed_slot_is_taken_back_and_spacing_kept(
    redis_server: testbed.Redis,
) -> None:
    redis = Redis.from_url(redis_server.url)
    sched = _scheduler(redis, f"t{uuid.uuid4().hex[:8]}")
    cid, bystander = uuid.uuid4(), uuid.uuid4()
    step = 1 / sched.effective_cap(5)  # one send per slot under rateLimit 5
    first = await sched.reserve("mock", 200, cid, "ns", want=1, cap=5)
    other = await sched.reserve("mock", 200, bystander, "other", want=1, cap=5)
    assert first.granted and other.granted
    await asyncio.sleep(first.wait + 0.05)  # its sender came too late for it
    again = await sched.reserve("mock", 200, cid, "ns", want=1, cap=5, missed=first.at)
    assert again.granted and first.at < again.at < first.at + step  # not a whole step later
    nxt = await sched.reserve("mock", 200, cid, "ns", want=1, cap=5)
    assert not nxt.granted and nxt.reason == "rateLimit"  # the next keeps its distance
    # the bystander, which missed nothing, keeps its own schedule: one step after its slot
    later = await sched.reserve("mock", 200, bystander, "other", want=1, cap=5)
    assert not later.granted and later.at > other.at + step - 0.1
    await redis.aclose()


async def test_fair_shares_across_namespaces_and_campaign_limits(
    redis_server: testbed.Redis,
) -> None:
    redis = Redis.from_url(redis_server.url)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    sched = _scheduler(redis, prefix)
    quota = 200.0
    rate = sched.planned_rate(quota)
    crowd = [uuid.uuid4() for _ in range(10)]  # one namespace, ten campaigns
    alone, capped = uuid.uuid4(), uuid.uuid4()  # one campaign per namespace
    for cid in crowd:
        await sched.reserve("mock", quota, cid, "crowded", want=1)
    await sched.reserve("mock", quota, capped, "limited", want=1, cap=5)
    g_alone = await sched.reserve("mock", quota, alone, "quiet", want=1)
    g_crowd = await sched.reserve("mock", quota, crowd[0], "crowded", want=1)
    g_capped = await sched.reserve("mock", quota, capped, "limited", want=1, cap=5)
    # the limited namespace takes its 5/s; the other two split the rest evenly
    capped_share = sched.effective_cap(5)  # its rateLimit less room for a slice and lateness
    assert 4.5 < capped_share < 5
    assert abs(g_capped.share - capped_share) < 1e-6
    half = (rate - capped_share) / 2
    assert abs(g_alone.share - half) < 1e-6  # its own namespace's half
    assert abs(g_crowd.share - half / 10) < 1e-6  # the crowd shares one half
    status = await redis.hgetall(quota_status_key(prefix, capped))
    assert abs(float(status[b"share"]) - capped_share) < 1e-6 and status[b"provider"] == b"mock"
    assert float(status[b"providerRate"]) == rate
    await redis.aclose()


async def test_throttling_lowers_the_rate_and_pause_stops_grants(
    redis_server: testbed.Redis,
) -> None:
    redis = Redis.from_url(redis_server.url)
    sched = _scheduler(redis, f"t{uuid.uuid4().hex[:8]}")
    cid = uuid.uuid4()
    first = await sched.reserve("ses", 100, cid, "ns", want=1)
    lowered = await sched.throttled("ses", 100)
    assert lowered < first.rate
    again = await sched.throttled("ses", 100)  # at most one decrease per second
    assert again == lowered
    await sched.pause("ses", 30, "daily quota used up (200 of 200 in 24 h)")
    g = await sched.reserve("ses", 100, cid, "ns", want=1)
    assert g.granted == 0 and g.wait > 25 and g.reason.startswith("paused: daily quota")
    await redis.aclose()


def _lines(d: Path, pattern: str) -> list[str]:
    return [line for p in d.glob(pattern) for line in p.read_text().splitlines()]


async def test_mock_quota_is_one_account_for_every_client(
    redis_server: testbed.Redis, tmp_path: Path
) -> None:
    settings = WorkerSettings(
        redis_url=redis_server.url,
        queue_prefix=f"t{uuid.uuid4().hex[:8]}",
        mock_quota=30,
        mock_latency_ms=0,
        mock_failure_rate=0,
        mock_log_dir=str(tmp_path),
    )
    mocks = [MockProvider(settings), MockProvider(settings)]
    accepted = throttled = 0

    async def send(mock: MockProvider) -> None:
        nonlocal accepted, throttled
        for i in range(20):
            batch = [Outbound(i * 10 + j, f"u{i}-{j}@example.com", "s", "b") for j in range(5)]
            for o in await mock.send_many("email", batch):
                if o.result == "sent":
                    accepted += 1
                else:
                    assert o.result == "throttled" and o.error and "Throttling" in o.error
                    throttled += 1

    await asyncio.gather(*(send(m) for m in mocks))
    for m in mocks:
        await m.close()
    assert accepted + throttled == 200
    assert throttled > 0  # 200 sends cannot all fit 30/s unless they took 6 s
    logged = [float(line.split("\t")[0]) for line in _lines(tmp_path, "deliveries-*.log")]
    refused = len(_lines(tmp_path, "throttled-*.log"))
    assert len(logged) == accepted and refused == throttled
    assert _max_window(logged) <= 30


async def test_last_check_never_lets_a_window_exceed_the_limit_under_many_callers(
    redis_server: testbed.Redis, tmp_path: Path
) -> None:
    """Many concurrent senders on their own connections, each admitted by the window
    script right before it sends to the quota-enforcing mock, with random delays between
    admission, arrival and answer: the mock never throttles and logs no second over it."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    limit = 30
    settings = WorkerSettings(
        redis_url=redis_server.url,
        queue_prefix=prefix,
        mock_quota=limit,
        mock_latency_ms=0,
        mock_failure_rate=0,
        mock_log_dir=str(tmp_path),
    )
    clients = [Redis.from_url(redis_server.url) for _ in range(4)]
    scheds = [_scheduler(c, prefix) for c in clients]
    mocks = [MockProvider(settings) for _ in clients]
    window = scheds[0].window("mock", limit, uuid.uuid4(), None)
    rng = random.Random(13)
    outcomes: list[str] = []
    waits: list[float] = []

    async def sender(i: int) -> None:
        sched, mock = scheds[i % len(scheds)], mocks[i % len(mocks)]
        loop = asyncio.get_running_loop()
        end = loop.time() + 2.5
        while loop.time() < end:
            n = rng.randint(1, 4)
            admitted = await sched.admit(window, n)
            if not admitted.n:
                assert 0 < admitted.wait <= 1.0
                waits.append(admitted.wait)
                await asyncio.sleep(admitted.wait)
                continue
            await asyncio.sleep(rng.random() * 0.03)  # the way to the provider
            batch = [Outbound(j, f"s{i}-{j}@example.com", "s", "b") for j in range(n)]
            outcomes.extend(o.result for o in await mock.send_many("email", batch))
            await asyncio.sleep(rng.random() * 0.03)  # the way back
            await sched.answered(window, admitted, sent=True)

    await asyncio.gather(*(sender(i) for i in range(24)))
    for m in mocks:
        await m.close()
    for c in clients:
        await c.aclose()
    assert outcomes.count("sent") >= limit and waits  # the window filled and held senders back
    assert set(outcomes) == {"sent"}  # nothing beyond the mock's quota: no Throttling
    logged = [float(line.split("\t")[0]) for line in _lines(tmp_path, "deliveries-*.log")]
    assert len(logged) == len(outcomes) and _max_window(logged) <= limit
    assert not _lines(tmp_path, "throttled-*.log")


async def test_last_check_gives_the_exact_wait_and_counts_sends_in_flight(
    redis_server: testbed.Redis,
) -> None:
    redis = Redis.from_url(redis_server.url)
    sched = _scheduler(redis, f"t{uuid.uuid4().hex[:8]}")
    capped, other = uuid.uuid4(), uuid.uuid4()
    limited = sched.window("mock", 10, capped, 3)  # provider quota 10, campaign rateLimit 3
    free = sched.window("mock", 10, other, None)
    first = await sched.admit(limited, 3)
    assert first.n == 3
    refused = await sched.admit(limited, 1)  # its own limit is full, and still in flight
    assert refused.n == 0 and refused.wait >= 1.0 - 1e-3
    await sched.answered(limited, first, sent=True)
    refused = await sched.admit(limited, 1)  # answered: free one second after the answer
    assert refused.n == 0 and 0 < refused.wait <= 1.0
    other_in = await sched.admit(free, 7)  # the provider still has 7 of 10 for the others
    assert other_in.n == 7
    full = await sched.admit(free, 1)
    assert full.n == 0
    unsent = await sched.admit(sched.window("mock", 20, other, None), 4)
    assert unsent.n == 4
    await sched.answered(free, unsent, sent=False)  # never left: its room comes back at once
    retried = await sched.admit(sched.window("mock", 14, other, None), 4)
    assert retried.n == 4
    await sched.answered(free, retried, sent=False)
    await asyncio.sleep(refused.wait + 0.005)  # the exact wait: then the campaign has room
    again = await sched.admit(limited, 1)
    assert again.n == 1
    await redis.aclose()
