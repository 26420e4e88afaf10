"""The clients the routes share, opened at start-up and closed at shutdown."""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from notifq.api.account_cache import AccountCache
from notifq.api.authz import Authorizer
from notifq.api.kube import CampaignClient
from notifq.api.oidc import OidcVerifier
from notifq.api.ratelimit import ClientLimiter, LoginLimiter
from notifq.api.ttlcache import TtlCache
from notifq.core.settings import ApiSettings


@dataclass
class ApiContext:
    settings: ApiSettings
    pool: AsyncConnectionPool
    redis: Redis
    campaigns: CampaignClient
    authorize: Authorizer
    """Asks Kubernetes whether a user may do something (``authz``)."""
    oidc: OidcVerifier | None = None
    """Verifies the configured issuer's ID tokens; None: OIDC is off."""
    accounts: AccountCache = field(default_factory=lambda: AccountCache(0))
    """Account rows kept between requests while their changes are heard (``account_cache``);
    the default keeps none."""
    anonymous_answers: TtlCache = field(default_factory=lambda: TtlCache(1_000))
    """Answers to anonymous reads, shared by every anonymous caller for a moment."""

    @property
    def limiter(self) -> LoginLimiter:
        s = self.settings
        return LoginLimiter(self.redis, s.queue_prefix, s.login_attempts, s.login_window_seconds)

    @property
    def anonymous_limiter(self) -> ClientLimiter:
        s = self.settings
        return ClientLimiter(self.redis, s.queue_prefix, "anon", s.anonymous_reads_per_minute, 60)
