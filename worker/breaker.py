"""Provider failover: a circuit breaker per provider, and the choice of a secondary.

A provider is *down* when sends to it fail for the provider's sake, not the
message's (:attr:`Outcome.down`): no connection, a connection that broke, a
timeout, a 5xx or ``ServiceUnavailable`` answer. Each worker process keeps one
breaker per provider:

- **closed**: sends go to the provider. Every down outcome counts; any answer
  (sent, refused, throttled, a 4xx of the relay) resets the count. At
  ``failover_failure_threshold`` consecutive down outcomes the breaker opens, and
  at once when a message found it down on its last attempt (rather than fail a
  message for good while a secondary could take it).
- **open**: for ``failover_open_seconds`` the provider's messages go to its
  secondary (``provider_failover``), when the secondary's own breaker is not
  open; answers of sends that left before it opened change nothing.
- **half-open**: after that time one slice probes the provider (the others
  still go to the secondary). An answer closes the breaker; down, it opens
  again for another ``failover_open_seconds``. A probe that never reports is
  replaced by another after the same time.

Throttling (SES ``Throttling``, a relay's 421/451), quotas (SES's daily quota,
refused SMTP credentials) and rejected recipients are answers: they never open
a breaker, so they never fail over; they slow down or pause as before.

The breakers live in each process, not in Redis: a process finds out on its own
after ``failover_failure_threshold`` sends, which costs little, and needs
nothing shared to fail over while Redis itself is struggling. Only campaigns
with ``provider: auto`` fail over; an explicit provider is a pin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from notifq.core.settings import WorkerSettings
from notifq.worker import metrics
from notifq.worker.providers.base import Outcome

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half-open"]


class Breaker:
    """The circuit breaker of one provider in this process (see the module's text)."""

    def __init__(
        self,
        name: str,
        threshold: int,
        open_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.open_seconds = open_seconds
        self.clock = clock
        self.state: State = "closed"
        self.failures = 0
        """Consecutive down outcomes while closed."""
        self.since = 0.0
        """When the breaker opened, or when its probe left (half-open)."""

    def allows(self) -> bool:
        """Whether a slice may go to the provider now; in half-open state the first caller
        gets the probe and the others are refused until it reports (or is overdue)."""
        if self.state == "closed":
            return True
        now = self.clock()
        if now - self.since < self.open_seconds:
            return False
        if self.state == "open":
            self._set("half-open")
        self.since = now  # this caller's slice is the probe
        return True

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """The provider's answers to one call (an empty call tells nothing)."""
        downs = sum(o.down for o in outcomes)
        if downs < len(outcomes):  # it answered
            if self.state == "half-open":
                log.warning("provider %s answers again: breaker closed", self.name)
                self._set("closed")
            if self.state == "closed":
                self.failures = 0
            return
        if not downs or self.state == "open":
            return
        self.failures += downs
        if self.state == "half-open" or self.failures >= self.threshold:
            log.warning(
                "provider %s down (%d failed sends in a row): breaker open for %.0fs",
                self.name,
                self.failures,
                self.open_seconds,
            )
            self.since = self.clock()
            self._set("open")

    def trip(self, why: str) -> None:
        """Open now, before the threshold (a message would otherwise fail for good)."""
        if self.state != "open":
            log.warning("provider %s counted down: %s; breaker open", self.name, why)
            self.since = self.clock()
            self._set("open")

    def _set(self, state: State) -> None:
        self.state = state
        self.failures = 0
        metrics.BREAKER_OPEN.labels(self.name).set(0 if state == "closed" else 1)


class Failover:
    """Which provider a campaign's run goes through now: its route's primary, or the
    primary's secondary while the primary's breaker is open."""

    def __init__(
        self, settings: WorkerSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.pairs = settings.provider_failover
        self.threshold = settings.failover_failure_threshold
        self.open_seconds = settings.failover_open_seconds
        self.clock = clock
        self.breakers: dict[str, Breaker] = {}

    def breaker(self, provider: str) -> Breaker:
        found = self.breakers.get(provider)
        if found is None:
            found = Breaker(provider, self.threshold, self.open_seconds, self.clock)
            self.breakers[provider] = found
        return found

    def secondary(self, channel: str, primary: str) -> str | None:
        return self.pairs.get(channel, {}).get(primary)

    def route(self, channel: str, primary: str) -> str:
        """The provider for a run whose route leads to ``primary``: the primary while its
        breaker allows; else the secondary when its breaker allows; else the primary (both
        down: the messages fail transiently and are retried with backoff)."""
        secondary = self.secondary(channel, primary)
        if secondary is None or self.breaker(primary).allows():
            return primary
        return secondary if self.breaker(secondary).allows() else primary

    def record(self, provider: str, outcomes: Sequence[Outcome]) -> None:
        if outcomes:
            self.breaker(provider).record(outcomes)

    def reroutes(self, channel: str, primary: str) -> bool:
        """Whether messages that just found ``primary`` down go to its secondary at once
        (without spending an attempt): its breaker is open and the secondary's closed."""
        secondary = self.secondary(channel, primary)
        return (
            secondary is not None
            and self.breaker(primary).state == "open"
            and self.breaker(secondary).state == "closed"
        )
