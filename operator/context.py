"""Clients the operator's handlers share, opened at startup and closed at cleanup."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import urllib3
from bullmq import Queue
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from notifq.core.db import open_pool
from notifq.core.queue import alive_key, queue_opts
from notifq.core.renderpool import Limits, RenderPool
from notifq.core.settings import OperatorSettings
from notifq.operator.admission import Admission
from notifq.operator.kube import CampaignApi
from notifq.operator.objects import ObjectStore
from notifq.operator.policies import Policies, Slots
from notifq.operator.scaling import Recommender

log = logging.getLogger(__name__)


def kube_api_client() -> k8s.ApiClient | None:
    """A blocking client (used off the event loop), in-cluster or from KUBECONFIG."""
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        try:
            k8s_config.load_kube_config()
        except (k8s_config.ConfigException, FileNotFoundError, TypeError) as exc:
            log.warning("no Kubernetes client (ConfigMaps, scaling): %s", exc)
            return None
    api = k8s.ApiClient()
    if not api.configuration.verify_ssl:  # say it once, not at every call
        log.warning("the API server's certificate is not verified (kubeconfig says so)")
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    return api


def storing_slots(settings: OperatorSettings) -> int:
    """Campaigns stored at once, so those being stored hold at most half of the pool: a
    generated list holds ``store_parts`` + 1 connections while it is written (its COPYs
    and the statement making their text), a listed one 1 (its COPY). 3 with the
    defaults (20 connections, 2 parts)."""
    return max(1, settings.db_pool_size // (2 * (settings.store_parts + 1)))


@dataclass
class OperatorContext:
    settings: OperatorSettings
    pool: AsyncConnectionPool
    redis: Redis
    queue: Any
    core_api: k8s.CoreV1Api | None
    apps_api: k8s.AppsV1Api | None
    campaigns_api: CampaignApi | None
    swept: dict[uuid.UUID, tuple[str, float]] = field(default_factory=dict)
    """campaign -> (Redis epoch, monotonic time) of its last re-enqueue sweep."""
    recommenders: dict[str, Recommender] = field(default_factory=dict)
    """worker Deployment uid -> its recent scaling wishes."""
    storing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(3))
    """Campaigns being stored at once (:func:`storing_slots`): a burst of new campaigns
    leaves half of the pool to status reads (no pool timeout)."""
    renderer: RenderPool = field(default_factory=lambda: RenderPool(Limits()))
    """Renders templates on a budget, off the event loop (validation of new campaigns)."""
    objects: ObjectStore | None = None
    """Reads recipient lists from object storage (``recipients.s3``)."""
    policies: Policies | None = None
    """NotifqPolicies and namespace labels (None: no Kubernetes client, no limits)."""
    slots: Slots = field(default_factory=Slots)
    """Campaigns waiting for a slot of their namespace."""
    admission: Admission | None = None
    """Takes a namespace's slots (set in :meth:`open` and ``__post_init__``)."""

    def __post_init__(self) -> None:
        if self.admission is None:
            self.admission = Admission(self.pool, self.slots)

    @classmethod
    async def open(cls, settings: OperatorSettings) -> OperatorContext:
        pool = await open_pool(settings.database_url, max_size=settings.db_pool_size)
        redis = Redis.from_url(settings.redis_url)
        queue = Queue(settings.queue_name, queue_opts(settings.redis_url, settings.queue_prefix))
        api = kube_api_client()
        core = k8s.CoreV1Api(api) if api else None
        apps = k8s.AppsV1Api(api) if api else None
        campaigns = CampaignApi(api) if api else None
        return cls(
            settings,
            pool,
            redis,
            queue,
            core,
            apps,
            campaigns,
            storing=asyncio.Semaphore(storing_slots(settings)),
            renderer=RenderPool(Limits.from_settings(settings)),
            objects=ObjectStore(settings.aws_region, settings.aws_endpoint_url),
            policies=Policies(api, settings.policy_cache_seconds, redis, settings.queue_prefix),
        )

    async def close(self) -> None:
        await self.renderer.close()
        await self.queue.close()
        await self.redis.aclose()
        await self.pool.close()

    async def redis_epoch(self) -> str:
        """Id of the Redis data set; it changes when Redis lost its keys."""
        key = alive_key(self.settings.queue_prefix)
        value = await self.redis.get(key)
        if value is None:
            await self.redis.set(key, uuid.uuid4().hex, nx=True)
            value = await self.redis.get(key)
        return value.decode() if isinstance(value, bytes) else str(value)

    def sweep_due(self, cid: uuid.UUID, epoch: str) -> bool:
        last = self.swept.get(cid)
        return (
            last is None
            or last[0] != epoch
            or time.monotonic() - last[1] >= self.settings.requeue_interval
        )

    def mark_swept(self, cid: uuid.UUID, epoch: str) -> None:
        self.swept[cid] = (epoch, time.monotonic())
