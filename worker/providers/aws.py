"""Shared AWS plumbing: one boto3 client per service, calls off the event loop,
and the classification of AWS errors into transient and permanent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    HTTPClientError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from notifq.core.settings import WorkerSettings
from notifq.worker.providers.base import Outbound, Outcome, Result

THROTTLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "Throttled", "TooManyRequestsException"}
)
"""The provider's rate was exceeded (SES ``Throttling``: "Maximum sending rate exceeded",
SNS ``Throttled``): lower the rate, do not spend the message's attempts."""

DAILY_QUOTA_MESSAGE = "daily message quota exceeded"
"""SES answers ``Throttling`` with this message when the 24-hour quota is used up."""

TRANSIENT_CODES = frozenset(
    {
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "LimitExceededException",
        "ServiceUnavailableException",
        "KMSThrottlingException",
    }
)


DOWN_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
    }
)
"""Error codes that say the service itself is failing (with any 5xx status): the failover
breaker counts them. Throttling, quotas and ``LimitExceeded`` are the service working."""


class TargetRefused(Exception):
    """We refuse the target ourselves (never sent, never retried)."""


def classify(exc: Exception) -> tuple[Result, str]:
    """(result, reason) for an exception from a boto3 call."""
    if isinstance(exc, TargetRefused):
        return "permanent", str(exc)
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        reason = f"{code}: {err.get('Message', '')}".strip()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
        if code in THROTTLE_CODES:
            if DAILY_QUOTA_MESSAGE in reason.lower():
                return "exhausted", reason
            return "throttled", reason
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return "transient", reason
        return "permanent", reason
    return "transient", f"{type(exc).__name__}: {exc}"


def is_down(exc: Exception) -> bool:
    """Whether a boto3 call failed because the service is down rather than for the message:
    no connection (refused, unreachable, timed out), a connection that broke or timed out
    reading (``HTTPClientError``), or a 5xx answer that is not throttling."""
    if isinstance(exc, EndpointConnectionError | BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
        return code not in THROTTLE_CODES and (code in DOWN_CODES or status >= 500)
    return False


class AwsProvider:
    """Base for SES/SNS: sends each message with a blocking boto3 call in a thread pool."""

    name = "aws"
    service = ""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"{self.name}-send")

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.session.Session().client(
                self.service,  # type: ignore[call-overload]
                region_name=self.settings.aws_region,
                endpoint_url=self.settings.aws_endpoint_url,
                config=Config(
                    retries={"max_attempts": 1, "mode": "standard"},
                    max_pool_connections=32,
                    connect_timeout=5,
                    read_timeout=15,
                ),
            )
        return self._client

    def send_one(self, channel: str, message: Outbound) -> str:
        """Send one message; returns the provider's message id. Raises on failure."""
        raise NotImplementedError

    async def send_many(self, channel: str, messages: list[Outbound]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        self.client  # noqa: B018 - create the client once, outside the threads
        call: Callable[[Outbound], str] = lambda m: self.send_one(channel, m)  # noqa: E731
        futures = [loop.run_in_executor(self._pool, call, m) for m in messages]
        results = await asyncio.gather(*futures, return_exceptions=True)
        out: list[Outcome] = []
        for m, r in zip(messages, results, strict=True):
            if isinstance(r, BaseException):
                if not isinstance(r, Exception):
                    raise r
                kind, reason = classify(r)
                down = kind == "transient" and is_down(r)
                out.append(Outcome(m.seq, kind, reason[:1000], down=down))
            else:
                out.append(Outcome(m.seq, "sent", provider_id=r))
        return out

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
