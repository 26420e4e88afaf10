"""Each provider's quota as this worker knows it: a setting, or the provider's own word.

SES tells its quota (``GetSendQuota``: MaxSendRate, Max24HourSend,
SentLast24Hours). It is read when this worker first sends through SES and every
``ses_quota_interval`` seconds after; ``rate_limit_ses`` overrides the rate. When
the 24-hour quota is used up, sending through SES is paused (for every worker,
in the shared scheduler) with a reason the campaign's status shows, instead of
failing messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from notifq.core.settings import WorkerSettings
from notifq.worker.providers.base import Provider
from notifq.worker.quota import QuotaScheduler

log = logging.getLogger(__name__)

SES_STARTING_RATE = 14.0
"""SES's sending rate for new accounts: planned until ``GetSendQuota`` was read."""
UNLIMITED = 0.0


class Ceilings:
    def __init__(
        self, settings: WorkerSettings, providers: dict[str, Provider], scheduler: QuotaScheduler
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.scheduler = scheduler
        self.configured = {name: settings.rate_limit(name) for name in providers}
        self.read: dict[str, float] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def get(self, provider: str) -> float:
        """Sends per second allowed through ``provider`` (0: unlimited)."""
        value = self.configured.get(provider, UNLIMITED)
        if value is None:
            value = self.read.get(provider, SES_STARTING_RATE)
        if provider in self.read or hasattr(self.providers.get(provider), "send_quota"):
            self._watch(provider)
        return value

    def _watch(self, provider: str) -> None:
        if provider not in self._tasks:
            self._tasks[provider] = asyncio.create_task(self._loop(provider))

    async def refresh(self, provider: str) -> None:
        """Read the provider's quota; pause it when its 24-hour quota is used up."""
        info = self.providers[provider]
        max_rate, max_day, sent_day = await info.send_quota()  # type: ignore[attr-defined]
        self.read[provider] = max_rate
        log.info(
            "provider %s quota: %.1f/s, %.0f per 24 h, %.0f sent in the last 24 h",
            provider,
            max_rate,
            max_day,
            sent_day,
        )
        if max_day > 0 and sent_day >= max_day:
            await self.scheduler.pause(
                provider,
                2 * self.settings.ses_quota_interval,  # until after the next read
                f"daily quota used up ({sent_day:.0f} of {max_day:.0f} in 24 h)",
            )

    async def _loop(self, provider: str) -> None:
        while True:
            try:
                await self.refresh(provider)
            except Exception as exc:
                log.warning("provider %s quota not read: %s", provider, exc)
            await asyncio.sleep(self.settings.ses_quota_interval)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
