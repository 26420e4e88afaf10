"""The operator's view of NotifqPolicies and namespace labels, read on demand and kept
for ``policy_cache_seconds``; the queue of campaigns waiting for a slot per namespace.

Reads happen only when a campaign is admitted or reconciled while active (the shares
are republished then), so idle namespaces cost nothing. A NotifqPolicy event clears the
cache and wakes the waiting campaigns (:mod:`notifq.operator.supervisor`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from redis.asyncio import Redis

from notifq.core import policy
from notifq.core.queue import share_key
from notifq.core.resource import GROUP, POLICY_PLURAL, VERSION
from notifq.operator import metrics

log = logging.getLogger(__name__)

TIMEOUT = 30.0
SHARE_TTL_MS = 600_000
"""How long a published share outlives the operator's last reconcile of the namespace."""


class PolicyUnavailable(Exception):
    """The policies or the namespace could not be read: admission waits and retries."""


class Policies:
    """NotifqPolicies and namespace labels through the Kubernetes API, cached briefly."""

    def __init__(
        self, api_client: k8s.ApiClient | None, ttl: float, redis: Redis, prefix: str
    ) -> None:
        self.custom = k8s.CustomObjectsApi(api_client) if api_client else None
        self.core = k8s.CoreV1Api(api_client) if api_client else None
        self.ttl = ttl
        self.redis = redis
        self.prefix = prefix
        self._policies: tuple[float, list[Mapping[str, Any]]] | None = None
        self._labels: dict[str, tuple[float, Mapping[str, str]]] = {}
        self._published: dict[str, tuple[float, Mapping[str, float]]] = {}
        self._last: dict[str, policy.Limits] = {}
        """The limits last read per namespace (kept while the API server is away)."""

    def invalidate(self) -> None:
        self._policies = None
        self._labels.clear()

    async def limits(self, namespace: str, *, fresh: bool = False) -> policy.Limits:
        """The limits in force for ``namespace``; :class:`PolicyUnavailable` when they were
        never read (an API server that cannot be reached later keeps the last ones read).
        ``fresh``: read them now, whatever the cache holds (before a final refusal)."""
        if self.custom is None or self.core is None:
            return policy.Limits()
        if fresh:
            self._policies = None
            self._labels.pop(namespace, None)
        now = time.monotonic()
        try:
            if self._policies is None or now - self._policies[0] > self.ttl:
                self._policies = (now, await asyncio.to_thread(self._list))
            cached = self._labels.get(namespace)
            if cached is None or now - cached[0] > self.ttl:
                cached = (now, await asyncio.to_thread(self._namespace_labels, namespace))
                self._labels[namespace] = cached
        except Exception as exc:
            last = self._last.get(namespace)
            if last is None or fresh:
                raise PolicyUnavailable(str(exc)) from exc
            log.warning("namespace %s: policies not read (%s); the last ones hold", namespace, exc)
            return last
        limits = policy.resolve(self._policies[1], cached[1])
        self._last[namespace] = limits
        return limits

    def _list(self) -> list[Mapping[str, Any]]:
        assert self.custom is not None
        try:
            out = self.custom.list_cluster_custom_object(
                GROUP, VERSION, POLICY_PLURAL, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:  # the CRD is not installed: no policy
                return []
            raise PolicyUnavailable(f"NotifqPolicies not readable: {exc.reason}") from exc
        return list(out.get("items") or [])

    def _namespace_labels(self, namespace: str) -> Mapping[str, str]:
        assert self.core is not None
        try:
            ns = self.core.read_namespace(namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            raise PolicyUnavailable(f"namespace {namespace} not readable: {exc.reason}") from exc
        return dict(ns.metadata.labels or {})

    async def publish(self, namespace: str, limits: policy.Limits) -> None:
        """Put the namespace's provider shares where the workers read them (Redis), at most
        once per ``ttl`` unless they changed."""
        now = time.monotonic()
        last = self._published.get(namespace)
        shares = dict(limits.shares)
        if last is not None and last[1] == shares and now - last[0] < self.ttl:
            return
        key = share_key(self.prefix, namespace)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        if shares:
            pipe.hset(key, mapping={k: repr(v) for k, v in shares.items()})
            pipe.pexpire(key, SHARE_TTL_MS)
        await pipe.execute()
        self._published[namespace] = (now, shares)


@dataclass(frozen=True, slots=True, order=True)
class Waiting:
    """A campaign waiting for a slot, in the order it is let in."""

    created: str
    name: str
    uid: uuid.UUID


class Slots:
    """Per namespace: campaigns admitted but not stored yet, and the ones waiting.

    Admission and storing of one namespace's campaigns are serialized by its lock, so
    two campaigns cannot take the last slot at once; the waiting ones are let in by
    creation time (the order a restarted operator rebuilds as it sees them)."""

    def __init__(self) -> None:
        self.locks: dict[str, asyncio.Lock] = {}
        self.waiting: dict[str, dict[uuid.UUID, Waiting]] = {}
        self.on_free: Callable[[str], None] = lambda _: None
        """Wakes a namespace's waiting campaigns (set by the supervisor)."""

    def freed(self, namespace: str) -> None:
        """A slot may have freed in ``namespace``: the waiting campaigns look again."""
        if self.waiting.get(namespace):
            self.on_free(namespace)

    def is_waiting(self, namespace: str, uid: uuid.UUID) -> bool:
        return uid in self.waiting.get(namespace, {})

    def lock(self, namespace: str) -> asyncio.Lock:
        return self.locks.setdefault(namespace, asyncio.Lock())

    def ahead(self, namespace: str, me: Waiting) -> int:
        """Waiting campaigns of the namespace to be let in before ``me``."""
        return sum(1 for w in self.waiting.get(namespace, {}).values() if w < me)

    def wait(self, namespace: str, me: Waiting) -> None:
        self.waiting.setdefault(namespace, {})[me.uid] = me
        metrics.QUEUED.set(sum(len(q) for q in self.waiting.values()))

    def leave(self, namespace: str, uid: uuid.UUID) -> None:
        queue = self.waiting.get(namespace)
        if queue is not None:
            queue.pop(uid, None)
            if not queue:
                self.waiting.pop(namespace, None)
            metrics.QUEUED.set(sum(len(q) for q in self.waiting.values()))
