"""The suppression list while Postgres is unreachable (a real Postgres behind a proxy that
is taken down): the core raises DatabaseUnavailable, not psycopg's errors, so the REST
API's routes (here the one-click unsubscribe) and the aggregated reports API (with a real
SubjectAccessReview) answer 503, not 500; the answers name no internals."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import testbed
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from outage_proxy import OutageProxy

from notifq.api.app import create_app
from notifq.api.authz import subject_access_reviewer
from notifq.api.kube import CampaignClient
from notifq.api.reports import create_reports_app
from notifq.api.testing import serve_in_thread
from notifq.core import suppression
from notifq.core.db import open_pool
from notifq.core.errors import DatabaseUnavailable
from notifq.core.settings import ApiSettings
from notifq.core.unsubscribe import Keys

KEYS = f"k1:{secrets.token_urlsafe(32)}"


@pytest.fixture
def db_proxy(postgres: testbed.Postgres, database_url: str) -> Iterator[tuple[OutageProxy, str]]:
    """A proxy in front of the session's Postgres, and the database's URL through it."""
    with OutageProxy(postgres.port) as proxy:
        yield proxy, database_url.replace(f":{postgres.port}/", f":{proxy.port}/")


async def test_core_raises_database_unavailable(db_proxy: tuple[OutageProxy, str]) -> None:
    proxy, url = db_proxy
    pool = await open_pool(url)
    try:
        ns = f"outage-{uuid.uuid4().hex[:8]}"
        assert await suppression.add(pool, ns, ["a@company.test"], "manual") == 1
        assert [e.recipient for e in await suppression.page(pool, ns)] == ["a@company.test"]
        proxy.down()
        with pytest.raises(DatabaseUnavailable):
            await suppression.page(pool, ns)
        with pytest.raises(DatabaseUnavailable):
            await suppression.add(pool, ns, ["b@company.test"], "manual")
        with pytest.raises(DatabaseUnavailable):
            await suppression.remove(pool, ns, "a@company.test")
    finally:
        await pool.close(timeout=1)


def test_unsubscribe_answers_503(db_proxy: tuple[OutageProxy, str], redis_server: Any) -> None:
    proxy, url = db_proxy
    settings = ApiSettings(
        environment="test",
        database_url=url,
        redis_url=redis_server.url,
        queue_prefix=f"outage{uuid.uuid4().hex[:8]}",
        jwt_secret=secrets.token_urlsafe(48),
        unsubscribe_keys=KEYS,
        public_base_url="https://notifq.test",
    )
    cfg = k8s.Configuration(host="http://127.0.0.1:9")  # not needed by this route
    kube = CampaignClient(k8s.ApiClient(cfg), "default")
    token = Keys.parse(KEYS).sign(f"outage-{uuid.uuid4().hex[:8]}", "reader@company.test")
    with (
        serve_in_thread(create_app(settings, campaigns_client=kube)) as base,
        httpx.Client(base_url=base, timeout=60) as api,
    ):
        assert api.post(f"/unsubscribe/{token}").status_code == 200  # the database answers
        proxy.down()
        resp = api.post(f"/unsubscribe/{token}")
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "the database is unavailable; try again shortly"
    assert str(proxy.port) not in resp.text


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # test bed
async def test_reports_suppressions_answer_503(
    db_proxy: tuple[OutageProxy, str], control_plane: testbed.ControlPlane
) -> None:
    proxy, url = db_proxy
    pool = await open_pool(url)
    kube = k8s_config.new_client_from_config(str(control_plane.kubeconfig))
    app = create_reports_app(pool, subject_access_reviewer(kube))
    ns = f"outage-{uuid.uuid4().hex[:8]}"
    path = f"/apis/reports.notifq.dev/v1alpha1/namespaces/{ns}/suppressions"
    who = {"X-Remote-User": "ops", "X-Remote-Group": "system:masters"}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://reports", headers=who
        ) as client:
            assert (await client.get(path)).status_code == 200
            proxy.down()
            answers = [
                await client.get(path),
                await client.post(path, json={"recipients": ["a@company.test"]}),
                await client.delete(f"{path}/a@company.test"),
            ]
    finally:
        await pool.close(timeout=1)
        kube.close()
    for resp in answers:
        assert resp.status_code == 503, resp.text
        assert resp.json()["reason"] == "ServiceUnavailable"
        assert str(proxy.port) not in resp.text
