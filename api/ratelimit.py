"""Login limiter (and the anonymous reads' limiter) shared by every API replica (Redis
fixed windows).

Failed logins are counted per client IP and per account in keys
``<queue_prefix>:login:ip:<ip>`` and ``<queue_prefix>:login:acct:<sha256(email)>``
that expire ``window`` seconds after the first attempt. Every attempt is
counted before the password is checked (atomic INCR, so parallel guesses cannot
slip through); a successful one is uncounted again and clears the account's
count. Once ``attempts`` failures are counted for the IP or the account within
the window, further logins are refused (429, ``Retry-After`` = the key's
remaining lifetime) until the window ends.

An anonymous flood must not lock a known admin out for as long as it lasts, so a
client that logged in before is counted apart (OWASP's "device cookies"): a
successful login sets a signed device cookie for that account (``security.
issue_device``); an attempt that presents one is counted only in
``<queue_prefix>:login:dev:<nonce>`` (the same limit, for that device alone) and
never in the IP or account keys. Guessing from anywhere else locks out only
clients without a device cookie for that account; a stolen cookie buys its thief
``attempts`` guesses per window, no more.

Client addresses come from X-Forwarded-For only when the connection comes from a
trusted proxy (``NOTIFQ_TRUSTED_PROXIES``, uvicorn's proxy headers), so behind an
Ingress each client is keyed apart instead of all as the ingress controller.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from notifq.core.errors import RedisUnavailable


async def count(redis: Redis, keys: list[str], limit: int, window: int) -> int:
    """Count one request in each fixed-window key; seconds until the fullest key's window
    ends if any is over ``limit``, else 0."""
    try:
        pipe = redis.pipeline(transaction=True)
        for k in keys:
            pipe.incr(k)
            pipe.expire(k, window, nx=True)
            pipe.ttl(k)
        got = await pipe.execute()
    except RedisError as exc:
        raise RedisUnavailable(f"Redis: {exc}") from exc
    wait = 0
    for n, ttl in zip(got[0::3], got[2::3], strict=True):
        if int(n) > limit:
            wait = max(wait, int(ttl) if int(ttl) > 0 else window)
    return wait


@dataclass(frozen=True)
class ClientLimiter:
    """Requests per client address in fixed windows, shared by replicas
    (``<prefix>:<name>:ip:<ip>``): the anonymous reads' limit."""

    redis: Redis
    prefix: str
    name: str
    limit: int
    window: int

    async def hit(self, ip: str) -> int:
        """Count one request of ``ip``; seconds to wait if it is over the limit, else 0."""
        return await count(
            self.redis, [f"{self.prefix}:{self.name}:ip:{ip}"], self.limit, self.window
        )


@dataclass(frozen=True)
class LoginLimiter:
    redis: Redis
    prefix: str
    attempts: int
    window: int

    def _keys(self, ip: str, email: str, device: str | None = None) -> list[str]:
        if device is not None:
            return [f"{self.prefix}:login:dev:{device}"]
        acct = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return [f"{self.prefix}:login:ip:{ip}", f"{self.prefix}:login:acct:{acct}"]

    async def hit(self, ip: str, email: str, device: str | None = None) -> int:
        """Count one login attempt; seconds to wait if it is over the limit, else 0.

        ``device``: the nonce of a valid device cookie for ``email`` (counted apart).
        Counting before the password is checked keeps concurrent attempts honest.
        """
        return await count(self.redis, self._keys(ip, email, device), self.attempts, self.window)

    async def succeeded(self, ip: str, email: str, device: str | None = None) -> None:
        """A good password: forget the account's (or device's) count and do not count this
        try for the IP."""
        try:
            pipe = self.redis.pipeline(transaction=True)
            if device is not None:
                pipe.delete(*self._keys(ip, email, device))
            else:
                ip_key, acct_key = self._keys(ip, email)
                pipe.delete(acct_key)
                pipe.decr(ip_key)
            await pipe.execute()
        except RedisError as exc:
            raise RedisUnavailable(f"Redis: {exc}") from exc
