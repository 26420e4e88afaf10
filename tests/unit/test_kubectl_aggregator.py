"""Which failures of the reports API the kubectl plugin tries again."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from notifq.kubectl.client import from_aggregator


def failure(status: int, body: str) -> ApiException:
    exc = ApiException(status=status, reason="Service Unavailable")
    exc.body = body
    return exc


@pytest.mark.parametrize(
    "body",
    ["service unavailable\n", "", "Error trying to reach service: 'dial tcp: refused'"],
)
def test_the_api_servers_own_503_is_tried_again(body: str) -> None:
    """kube-apiserver answers for an aggregated API it cannot reach with plain text."""
    assert from_aggregator(failure(503, body))


def test_an_answer_of_the_reports_server_is_not() -> None:
    """The reports server's own 503 (its database is down) is a Status: shown, not retried;
    nor is any other status."""
    status = {"kind": "Status", "status": "Failure", "code": 503, "message": "the database"}
    assert not from_aggregator(failure(503, json.dumps(status)))
    assert not from_aggregator(failure(500, "service unavailable\n"))
    assert not from_aggregator(failure(403, json.dumps({**status, "code": 403})))
