"""The clients the routes share, opened at start-up and closed at shutdown."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from notifq.api.kube import CampaignClient
from notifq.api.ratelimit import LoginLimiter
from notifq.core.settings import ApiSettings


@dataclass
class ApiContext:
    settings: ApiSettings
    pool: AsyncConnectionPool
    redis: Redis
    campaigns: CampaignClient

    @property
    def limiter(self) -> LoginLimiter:
        s = self.settings
        return LoginLimiter(self.redis, s.queue_prefix, s.login_attempts, s.login_window_seconds)
