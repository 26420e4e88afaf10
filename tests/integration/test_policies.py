"""The operator's view of NotifqPolicies against a real kube-apiserver: cached for
``policy_cache_seconds``, read afresh before a refusal (``limits(ns, fresh=True)``), so a
policy made just before a campaign is never judged by a list cached earlier."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import testbed
from kubernetes import config as k8s_config
from redis.asyncio import Redis

from notifq.core.resource import API_VERSION
from notifq.operator.policies import Policies

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def test_a_refusal_reads_the_policies_afresh(
    control_plane: testbed.ControlPlane, redis_server: testbed.Redis, namespace: str
) -> None:
    other = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", other)
    name = f"lists-{namespace}"
    policy = {
        "apiVersion": API_VERSION,
        "kind": "NotifqPolicy",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "s3": [{"bucket": "lists"}],
        },
    }

    async def run() -> None:
        client = k8s_config.new_client_from_config(str(control_plane.kubeconfig))
        redis = Redis.from_url(redis_server.url)
        policies = Policies(client, ttl=3600, redis=redis, prefix=f"t{uuid.uuid4().hex[:6]}")
        try:
            assert not (await policies.limits(namespace)).s3_allows("lists", "a.csv")
            assert not (await policies.limits(other)).s3_allows("lists", "a.csv")
            control_plane.kubectl("apply", "-f", "-", input=json.dumps(policy))
            # within the cache's lifetime the old answer holds ...
            assert not (await policies.limits(namespace)).s3_allows("lists", "a.csv")
            # ... but the read that precedes a final refusal sees the new policy
            assert (await policies.limits(namespace, fresh=True)).s3_allows("lists", "a.csv")
            assert (await policies.limits(namespace)).s3_allows("lists", "a.csv")
            # the policy selects its namespace only
            assert not (await policies.limits(other, fresh=True)).s3_allows("lists", "a.csv")
        finally:
            control_plane.kubectl("delete", "notifqpolicy", name, check=False)
            await redis.aclose()
            client.close()

    asyncio.run(run())
