"""Provider quotas end to end: throttling costs no attempt, waiting is visible.

The mock provider enforces a quota of 40 sends per sliding second for every
worker together, while the workers are told to plan 80/s: the provider answers
Throttling, the shared rate comes down (AIMD), and every message is still
sent with exactly one attempt counted. A campaign with ``rateLimit`` shows in
its status that it waits for quota, with the provider's rate and its share.
A bystander in another namespace finishes as if alone.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import testbed
from harness import Stack, campaign, mock_log, wait_until
from redis import Redis

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_throttling_lowers_the_rate_without_spending_attempts(
    stack_factory: Callable[..., Stack], namespace: str, control_plane: testbed.ControlPlane
) -> None:
    stack = stack_factory(
        NOTIFQ_MOCK_QUOTA="40",
        NOTIFQ_RATE_LIMIT_MOCK="80",
        NOTIFQ_MOCK_FAILURE_RATE="0",
        NOTIFQ_MOCK_LATENCY_MS="5",
    )
    other = f"by-{namespace}"
    control_plane.kubectl("create", "namespace", other)
    domains = tuple(f"@{n}-{namespace}.example.com" for n in ("big", "slow", "by"))
    stack.apply(
        campaign(
            "big",
            namespace,
            provider="mock",
            recipients={"generate": {"count": 600, "domain": domains[0][1:]}},
        )
    )
    stack.apply(
        campaign(
            "slow",
            namespace,
            provider="mock",
            rateLimit=4,
            recipients={"generate": {"count": 60, "domain": domains[1][1:]}},
        )
    )
    stack.apply(
        campaign(
            "bystander",
            other,
            provider="mock",
            recipients={"generate": {"count": 300, "domain": domains[2][1:]}},
        )
    )

    def slow_waits() -> bool:
        quota = stack.get(namespace, "slow").get("status", {}).get("quota") or {}
        return bool(quota.get("waiting")) and quota.get("reason") == "rateLimit"

    wait_until(slow_waits, 120, "the rate-limited campaign to show it waits for quota")
    st = stack.get(namespace, "slow")["status"]
    # its rateLimit less the headroom (1 %) and room for 50 ms of jitter: 4 * 0.99 / 1.05
    assert st["quota"]["provider"] == "mock" and st["quota"]["share"] == 3.8
    assert 0 < st["quota"]["providerRate"] <= 80
    cond = next(c for c in st["conditions"] if c["type"] == "QuotaLimited")
    assert cond["status"] == "True" and cond["reason"] == "QuotaWaiting"
    assert "waiting for its rateLimit" in st["message"]

    expected = ((namespace, "big", 600), (namespace, "slow", 60), (other, "bystander", 300))
    for ns, name, total in expected:
        cr = stack.wait_phase(ns, name, {"Completed"}, 240)
        assert cr["status"]["sent"] == total
        assert "quota" not in cr["status"] or cr["status"]["quota"] is None
    with stack.db() as conn:
        attempts = conn.execute(
            "SELECT m.attempts, count(*) FROM message m JOIN campaign c ON c.id = m.campaign_id "
            "WHERE c.namespace IN (%s, %s) GROUP BY 1",
            (namespace, other),
        ).fetchall()
    assert dict(attempts) == {1: 960}  # throttled tries were not counted
    # only this test's sends: the log is the stack's, the cluster may hold other campaigns
    log = {r: n for r, n in mock_log(stack).items() if r.endswith(domains)}
    assert len(log) == 960 and set(log.values()) == {1}
    throttled = sum(
        len(p.read_text().splitlines()) for p in (stack.workdir / "mock-log").glob("throttled-*")
    )
    redis = Redis.from_url(stack.env["NOTIFQ_REDIS_URL"])
    lowered = redis.hget(f"{stack.env['NOTIFQ_QUEUE_PREFIX']}:quota:p:mock", "throttles")
    redis.close()
    print(f"\nthrottled answers: {throttled}, rate decreases: {lowered!r}")
    assert throttled > 0 and lowered is not None and int(lowered) >= 1
