"""The autoscaler's decision function over a table of cases."""

from __future__ import annotations

import pytest

from notifq.core.settings import OperatorSettings
from notifq.operator.scaling import Policy, Recommender, wish

P = Policy(min_replicas=1, max_replicas=5, target=1000, activation=10, window=60)


@pytest.mark.parametrize(
    ("backlog", "expected"),
    [
        (0, 1),  # empty
        (9, 1),  # below activation
        (10, 1),  # at activation: ceil(10/1000) = 1
        (1000, 1),  # exact multiple
        (1001, 2),
        (3000, 3),  # exact multiple
        (4999, 5),
        (50_000, 5),  # above max
    ],
)
def test_wish(backlog: int, expected: int) -> None:
    assert wish(backlog, P) == expected


def test_scale_up_is_immediate_and_down_waits_for_the_window() -> None:
    r = Recommender()
    assert r.decide(4500, 1, P, now=0).replicas == 5
    # backlog gone, inside the window: hold
    held = r.decide(0, 5, P, now=30)
    assert held.replicas == 5 and "stabilization" in held.reason
    # a smaller wish later inside the window still holds the highest one
    assert r.decide(1500, 5, P, now=50).replicas == 5
    # after the window, fall to the highest wish seen within it
    assert r.decide(0, 5, P, now=100).replicas == 2
    assert r.decide(0, 2, P, now=200).replicas == 1


def test_pinned_size_is_never_fought() -> None:
    pinned = Policy(3, 3, 1000, 1, 60)
    assert Recommender().decide(1_000_000, 3, pinned, now=0).replicas == 3
    assert Recommender().decide(0, 3, pinned, now=0).replicas == 3


def test_out_of_bounds_replicas_are_corrected() -> None:
    assert Recommender().decide(0, 0, P, now=0).replicas == 1  # below min
    assert Recommender().decide(0, 9, P, now=0).replicas == 1  # above max, nothing pending


def test_policy_from_annotations_with_defaults_and_garbage() -> None:
    s = OperatorSettings(scale_min_replicas=1, scale_max_replicas=10, scale_target_backlog=500)
    p = Policy.from_annotations(
        {"notifq.dev/max-replicas": "4", "notifq.dev/min-replicas": "oops"}, s
    )
    assert (p.min_replicas, p.max_replicas, p.target) == (1, 4, 500)
    p = Policy.from_annotations({"notifq.dev/min-replicas": "6", "notifq.dev/max-replicas": "2"}, s)
    assert p.min_replicas == p.max_replicas == 6  # max never below min
