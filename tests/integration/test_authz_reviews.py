"""The REST API's authorizer against a real kube-apiserver: a burst of requests asking one
question when its cached answer has expired makes one SubjectAccessReview, not one per
request; other questions asked at the same time get their own answers."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest
import rbac
import testbed
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from notifq.api.authz import Access, Identity, subject_access_reviewer

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


class CountingClient(k8s.ApiClient):  # type: ignore[misc]
    """A real API client that counts the calls it makes (the reviews reach the server)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0
        self._lock = threading.Lock()

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
        return super().call_api(*args, **kwargs)


def test_a_burst_of_one_question_makes_one_review(control_plane: testbed.ControlPlane) -> None:
    ns, other = f"authz-{uuid.uuid4().hex[:6]}", f"authz-{uuid.uuid4().hex[:6]}"
    for name in (ns, other):
        control_plane.kubectl("create", "namespace", name)
    group = f"readers-{uuid.uuid4().hex[:6]}"
    rbac.grant(control_plane, ns, ["get"], group=group)
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(str(control_plane.kubeconfig), client_configuration=cfg)
    client = CountingClient(cfg)
    authorize = subject_access_reviewer(client, cache_seconds=1.0)
    who = Identity("reader@company.test", (group,))
    mine, theirs = Access(who, "get", ns), Access(who, "get", other)

    async def burst() -> list[bool]:
        asks = [authorize(mine) for _ in range(16)] + [authorize(theirs) for _ in range(4)]
        return list(await asyncio.gather(*asks))

    try:
        answers = asyncio.run(burst())
        assert answers == [True] * 16 + [False] * 4
        assert client.calls == 2  # one review per question
        assert asyncio.run(burst()) == answers
        assert client.calls == 2  # both answers cached
        time.sleep(1.1)
        assert asyncio.run(burst()) == answers
        assert client.calls == 4  # expired: asked again, once each
    finally:
        client.close()
