"""Fixtures of the e2e tests: API servers on the test bed for a test's namespace, a
moto server (S3, SES, SNS, SQS) per test module, and a Mailpit per test."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import testbed
from api_client import ADMIN, PASSWORD, Api
from mailpit import Mailpit

from notifq.api.app import create_app
from notifq.api.kube import CampaignClient
from notifq.api.testing import serve_in_thread
from notifq.core.settings import ApiSettings


@pytest.fixture
def api_factory(
    control_plane: Any, database_url: str, redis_server: Any, namespace: str, campaign_admins: str
) -> Iterator[Callable[..., Api]]:
    """API servers for this test's namespace (their account in the group allowed every
    campaign action); campaigns left there are deleted afterwards (unless an operator
    handled them) so no later operator delivers them."""
    stack: list[Any] = []

    def make(kube: CampaignClient | None = None, **overrides: Any) -> Api:
        """An API with these settings; ``kube``: its Campaign client (default: the test
        bed's API server)."""
        settings = ApiSettings(
            environment="test",
            database_url=database_url,
            redis_url=redis_server.url,
            queue_prefix=f"apie2e{uuid.uuid4().hex[:8]}",
            namespace=namespace,
            jwt_secret=secrets.token_urlsafe(48),
            admin_email=ADMIN,
            admin_password=PASSWORD,
            admin_kube_groups=[campaign_admins],
            authz_cache_seconds=0,
            **overrides,
        )
        if kube is None:
            kube = CampaignClient.from_environment(namespace, str(control_plane.kubeconfig))
        server = serve_in_thread(create_app(settings, campaigns_client=kube))
        url = server.__enter__()
        client = httpx.Client(base_url=url, timeout=60)
        stack.append((server, client, kube))
        return Api(client, namespace, control_plane)

    yield make
    for server, client, kube in stack:
        client.close()
        server.__exit__(None, None, None)
        kube.close()


@pytest.fixture
def api(api_factory: Callable[..., Api], control_plane: Any, namespace: str) -> Iterator[Api]:
    yield api_factory()
    control_plane.kubectl(
        "delete", "campaigns", "--all", "-n", namespace, "--wait=false", check=False
    )


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testbed.Moto]:
    """A moto server for the test module (a module that needs buckets or a verified sender
    overrides this fixture with one that asks for it and adds them)."""
    server = testbed.Moto(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture
def mailpit(tmp_path: Path) -> Iterator[Mailpit]:
    """A Mailpit SMTP server of this test's own."""
    mp = Mailpit(tmp_path / "mailpit").start()
    yield mp
    mp.stop()
