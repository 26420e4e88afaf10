"""Worker autoscaling: replicas from the backlog, with a scale-down stabilization window.

``desired = clamp(ceil(backlog / target), min, max)``; below the activation
threshold the wish is ``min``. Scaling up is immediate; scaling down follows the
*highest* wish seen during the last ``window`` seconds (like the HPA's
stabilization), so replicas do not flap when the backlog dips between chunks.
When ``min == max`` the decision is always that number: a user who pins the
size is never fought.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from notifq.core.resource import GROUP, WORKER_POOL_LABEL
from notifq.core.settings import OperatorSettings

ANNOTATION_PREFIX = f"{GROUP}/"
POOL_LABEL = WORKER_POOL_LABEL


@dataclass(frozen=True, slots=True)
class Policy:
    min_replicas: int
    max_replicas: int
    target: int
    activation: int
    window: float

    @classmethod
    def from_annotations(cls, ann: Mapping[str, str], s: OperatorSettings) -> Policy:
        def num(key: str, default: int) -> int:
            try:
                return int(ann.get(ANNOTATION_PREFIX + key, default))
            except ValueError:
                return default

        lo = max(0, num("min-replicas", s.scale_min_replicas))
        hi = max(lo, num("max-replicas", s.scale_max_replicas))
        window = float(
            ann.get(ANNOTATION_PREFIX + "scale-down-window-seconds", s.scale_down_window)
        )
        return cls(
            lo,
            hi,
            max(1, num("target-backlog-per-replica", s.scale_target_backlog)),
            max(0, num("activation-backlog", s.scale_activation_backlog)),
            window,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int
    reason: str


def wish(backlog: int, p: Policy) -> int:
    """Replicas the backlog alone asks for, within bounds."""
    if backlog < max(p.activation, 1):
        return p.min_replicas
    return min(p.max_replicas, max(p.min_replicas, math.ceil(backlog / p.target)))


@dataclass
class Recommender:
    """Remembers recent wishes of one Deployment to stabilize scale-down."""

    history: deque[tuple[float, int]] = field(default_factory=deque)

    def decide(self, backlog: int, current: int, p: Policy, now: float) -> Decision:
        if p.min_replicas == p.max_replicas:
            return Decision(p.min_replicas, "pinned (min == max)")
        w = wish(backlog, p)
        self.history.append((now, w))
        while self.history and self.history[0][0] < now - p.window:
            self.history.popleft()
        if w >= current:
            reason = "backlog above activation" if w > current else "steady"
            return Decision(w, f"{reason}: backlog {backlog}, target {p.target}/replica")
        stable = max(v for _, v in self.history)
        if stable >= current:
            return Decision(
                current,
                f"scale-down held by the {p.window:g}s stabilization window (backlog {backlog})",
            )
        return Decision(stable, f"backlog {backlog} for {p.window:g}s, target {p.target}/replica")
