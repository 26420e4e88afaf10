"""The REST API end to end: campaigns created through it are Campaign resources
(checked with kubectl), reads from the real control plane and Postgres, a
property-based run of the OpenAPI contract, and retry-failed with the real
operator and workers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from api_client import Api
from harness import Stack, campaign, wait_until
from hypothesis import HealthCheck, Phase, given, settings
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from notifq.api.kube import CampaignClient
from notifq.api.testing import free_port

pytestmark = [
    pytest.mark.e2e,
    # the test bed's API server has a self-signed certificate (insecure-skip-tls-verify)
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


def test_create_makes_a_campaign_resource(api: Api) -> None:
    body = api.create(name="Black Friday!", recipientCount=50, targetEmail="me@company.com")
    assert body["status"] == "pending"
    assert body["totalMessages"] == 50  # the target is one of the 50, as in the reference
    assert body["name"] == "Black Friday!"
    cr = api.kubectl_get(body["resourceName"])
    assert cr["metadata"]["uid"] == body["campaignId"]
    assert body["resourceName"].startswith("black-friday-")
    assert cr["metadata"]["annotations"]["notifq.dev/display-name"] == "Black Friday!"
    assert cr["spec"]["recipients"] == {
        "generate": {"count": 49, "include": ["me@company.com"], "domain": "example.com"}
    }
    assert cr["spec"]["channel"] == "email"


def test_create_with_extended_fields(api: Api) -> None:
    body = api.create(
        name="list",
        recipients=["a@company.com", "b@company.com"],
        subject="Hi {{ recipient }}",
        retry={"attempts": 2, "backoffMs": 500},
        rateLimit=10,
        scheduleAt="2099-01-01T09:00:00+02:00",
    )
    assert body["status"] == "scheduled"
    spec = api.kubectl_get(body["resourceName"])["spec"]
    assert spec["recipients"] == {"list": ["a@company.com", "b@company.com"]}
    assert spec["retry"] == {"attempts": 2, "backoffMs": 500}
    assert spec["scheduleAt"] == "2099-01-01T07:00:00Z"
    assert spec["subject"] == "Hi {{ recipient }}" and spec["rateLimit"] == 10


def test_create_with_recipient_fields_and_html(api: Api) -> None:
    body = api.create(
        name="fields",
        targetEmail="me@company.com",
        recipients=[{"email": "a@company.com", "name": "Ann"}, "b@company.com"],
        subject="Hi {{ recipient }}",
        html="<p>Hello {{ recipient }}</p>",
        scheduleAt="2099-01-01T09:00:00Z",
    )
    assert body["totalMessages"] == 3
    spec = api.kubectl_get(body["resourceName"])["spec"]
    assert spec["recipients"] == {
        "records": [
            {"to": "me@company.com"},
            {"email": "a@company.com", "name": "Ann"},
            {"to": "b@company.com"},
        ]
    }
    assert spec["html"] == "<p>Hello {{ recipient }}</p>" and "body" not in spec


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x", "recipientCount": 100_001},
        {"name": "x", "recipientCount": 0},
        {"name": "x", "targetEmail": "not-an-email"},
        {"name": "x", "recipients": ["a@company.com"], "recipientCount": 5},
        {"name": "x", "recipients": ["no-at-sign"]},  # refused by the CRD's CEL rule
        {"name": "x", "channel": "fax"},
        {"name": "x", "recipients": [{}]},
        {"name": "x", "recipients": [{"to": "a@company.com", "n": 1}]},
        {"name": "x", "html": "<p>\x07</p>"},
    ],
)
def test_invalid_creates_are_400(api: Api, body: dict[str, Any]) -> None:
    resp = api.client.post("/campaigns", json=body, headers=api.auth)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]


def test_list_is_newest_first_and_paginated(api: Api) -> None:
    ids = [api.create(name=f"c{i}", recipientCount=10)["campaignId"] for i in range(3)]
    resp = api.client.get("/campaigns", params={"limit": 2}, headers=api.auth)
    assert resp.status_code == 200
    assert resp.headers["X-Total-Count"] == "3"
    page = resp.json()
    assert len(page) == 2
    rest = api.client.get("/campaigns", params={"limit": 2, "offset": 2}, headers=api.auth).json()
    assert {c["id"] for c in page + rest} == set(ids)
    created = [c["createdAt"] for c in page + rest]
    assert created == sorted(created, reverse=True)
    first = page[0]
    assert set(first) >= {
        "id",
        "name",
        "totalMessages",
        "sentCount",
        "failedCount",
        "status",
        "createdAt",
        "updatedAt",
    }
    assert first["status"] == "pending" and first["totalMessages"] == 10


def test_campaign_made_with_kubectl_is_listed_and_found(api: Api) -> None:
    """A Campaign this API process never saw, not stored by any operator (no row, no
    cached name): found by id and listed through the metadata-only listing; a second
    namespace's campaign stays out of both."""
    other = f"other-{uuid.uuid4().hex[:6]}"
    api.control_plane.kubectl("create", "namespace", other)
    for ns, name in ((api.namespace, "by-kubectl"), (other, "elsewhere")):
        api.control_plane.kubectl(
            "apply",
            "-n",
            ns,
            "-f",
            "-",
            input=yaml.safe_dump(
                campaign(name, ns, recipients={"list": ["a@example.com", "b@example.com"]})
            ),
        )
    uid = api.kubectl_get("by-kubectl")["metadata"]["uid"]
    detail = api.detail(uid)
    assert detail["resourceName"] == "by-kubectl" and detail["totalMessages"] == 2
    wait_until(
        lambda: uid in {c["id"] for c in api.client.get("/campaigns", headers=api.auth).json()},
        10,
        "listed",
    )
    listed = api.client.get("/campaigns", headers=api.auth).json()
    assert [c["resourceName"] for c in listed] == ["by-kubectl"]
    assert listed[0]["totalMessages"] == 2 and listed[0]["status"] == "pending"
    api.control_plane.kubectl("delete", "namespace", other, "--wait=false")


def test_detail_and_404(api: Api) -> None:
    cid = api.create(name="one", recipientCount=7)["campaignId"]
    detail = api.detail(cid)
    assert detail["id"] == cid and detail["totalMessages"] == 7
    # not stored yet (no operator here): all seven are still to be sent
    assert detail["progress"] == {
        "pending": 7,
        "queued": 0,
        "sent": 0,
        "failed": 0,
        "cancelled": 0,
        "suppressed": 0,
    }
    assert api.client.get(f"/campaigns/{uuid.uuid4()}", headers=api.auth).status_code == 404
    for bad in ("not-a-uuid", "1", "%20", "x" * 500):
        resp = api.client.get(f"/campaigns/{bad}", headers=api.auth)
        assert resp.status_code == 404, bad
        assert resp.json()["error"]
    assert api.client.post("/campaigns/nope/retry", headers=api.auth).status_code == 404


def test_suspend_resume_cancel_delete(api: Api) -> None:
    made = api.create(name="intent", recipientCount=5)
    cid, name = made["campaignId"], made["resourceName"]
    assert api.client.post(f"/campaigns/{cid}/suspend").status_code == 401
    resp = api.client.post(f"/campaigns/{cid}/suspend", headers=api.auth)
    assert resp.status_code == 200, resp.text
    assert api.kubectl_get(name)["spec"]["suspend"] is True
    assert api.client.post(f"/campaigns/{cid}/resume", headers=api.auth).status_code == 200
    assert api.kubectl_get(name)["spec"]["suspend"] is False
    assert api.client.post(f"/campaigns/{cid}/cancel", headers=api.auth).status_code == 200
    assert api.kubectl_get(name)["spec"]["cancel"] is True
    retry = api.client.post(f"/campaigns/{cid}/retry", headers=api.auth)
    assert retry.status_code == 409
    assert api.client.delete(f"/campaigns/{cid}").status_code == 401
    assert api.client.delete(f"/campaigns/{cid}", headers=api.auth).status_code == 204
    gone = api.control_plane.kubectl("get", "campaign", name, "-n", api.namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    assert api.client.get(f"/campaigns/{cid}", headers=api.auth).status_code == 404
    assert api.client.post(f"/campaigns/{uuid.uuid4()}/cancel", headers=api.auth).status_code == 404


def test_retry_with_nothing_failed_is_400(api: Api) -> None:
    cid = api.create(name="fine", recipientCount=5)["campaignId"]
    resp = api.client.post(f"/campaigns/{cid}/retry", headers=api.auth)
    assert resp.status_code == 400
    assert resp.json() == {"error": "no failed messages to retry"}


def test_messages_need_a_token(api: Api) -> None:
    cid = api.create(name="private", recipientCount=5)["campaignId"]
    assert api.client.get(f"/campaigns/{cid}/messages").status_code == 401
    resp = api.client.get(f"/campaigns/{cid}/messages", headers=api.auth)
    assert resp.status_code == 200
    assert resp.json() == {"items": [], "nextAfter": None}


def test_readyz_with_every_dependency_up(api: Api) -> None:
    resp = api.client.get("/readyz")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "kubernetes": "ok"},
    }


def test_cors_when_configured(api_factory: Callable[..., Api]) -> None:
    api = api_factory(cors_origins=["https://dash.example.com"])
    resp = api.client.options(
        "/campaigns",
        headers={
            "Origin": "https://dash.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert resp.headers["access-control-allow-origin"] == "https://dash.example.com"
    other = api.client.get("/health", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers


# --- property-based: the OpenAPI contract, with a valid token --------------------------


def test_openapi_contract(api: Api) -> None:
    """Generated requests for every operation, with a valid token: no 5xx, and every
    answer (status, content type, body) is one the schema documents."""
    schema = schemathesis.openapi.from_url(f"{api.client.base_url}/openapi.json")
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 12
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(headers=api.auth, checks=checks)
            assert response.status_code < 500, (case.method, case.path, response.text)
            statuses.append(response.status_code)

        run()
    assert len(statuses) >= 5 * len(operations)
    assert {200, 202, 400, 404} <= set(statuses)


def _unreachable_kubernetes(control_plane: Any, namespace: str) -> CampaignClient:
    """A Campaign client with the test bed's credentials for a port nothing listens on."""
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(str(control_plane.kubeconfig), client_configuration=cfg)
    cfg.refresh_api_key_hook = None  # it would load the kubeconfig's server again
    cfg.host = f"https://127.0.0.1:{free_port()}"
    return CampaignClient(k8s.ApiClient(cfg), namespace)


def test_detail_of_a_stored_campaign_reads_no_resource(
    api: Api,
    api_factory: Callable[..., Api],
    stack_factory: Callable[..., Stack],
    namespace: str,
) -> None:
    """A stored campaign's detail is the operator's copy of its status (in its row) plus
    the counters: an API that cannot reach Kubernetes at all answers it, the same answer
    field for field, matching the resource's status; a campaign not stored yet still needs
    the resource (503 there, 200 with Kubernetes). A bystander in another namespace, with
    the same resource name, is delivered as if alone and answered as its own campaign."""
    stack = stack_factory(workers=1, NOTIFQ_MOCK_FAILURE_RATE="0")
    made = api.create(name="Stored one", recipientCount=30)
    cid, name = made["campaignId"], made["resourceName"]
    other = f"other-{uuid.uuid4().hex[:6]}"
    api.control_plane.kubectl("create", "namespace", other)
    api.control_plane.kubectl(
        "apply",
        "-n",
        other,
        "-f",
        "-",
        input=yaml.safe_dump(campaign(name, other, recipients={"generate": {"count": 12}})),
    )
    later = campaign("later", namespace, scheduleAt="2099-01-01T00:00:00Z")
    later["spec"]["recipients"] = {"list": ["a@example.com"]}
    api.control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(later))
    wait_until(lambda: api.detail(cid)["status"] == "completed", 90, "the campaign to complete")

    def bystander() -> dict[str, Any]:
        out = api.control_plane.kubectl("get", "campaign", name, "-n", other, "-o", "json")
        return dict(json.loads(out.stdout))

    wait_until(lambda: bystander().get("status", {}).get("phase") == "Completed", 90, "bystander")

    detail = api.detail(cid)
    cr = api.kubectl_get(name)
    status = cr["status"]
    assert detail["name"] == "Stored one" and detail["resourceName"] == name
    assert (detail["totalMessages"], detail["sentCount"], detail["failedCount"]) == (
        status["total"],
        status["sent"],
        status["failed"],
    )
    assert detail["message"] == status["message"] and detail["quota"] is None
    progress = {
        "pending": 0, "queued": 0, "sent": 30, "failed": 0, "cancelled": 0, "suppressed": 0
    }  # fmt: skip
    assert detail["progress"] == progress
    created = datetime.fromisoformat(detail["createdAt"])
    assert created == datetime.fromisoformat(cr["metadata"]["creationTimestamp"])
    assert datetime.fromisoformat(detail["updatedAt"]) >= created

    # (anonymous reads: with a token the caller's right is a SubjectAccessReview, which
    # needs Kubernetes; the answer itself needs none)
    blind = api_factory(
        kube=_unreachable_kubernetes(api.control_plane, namespace), anonymous_reads=True
    )
    assert blind.client.get(f"/campaigns/{cid}").json() == detail
    later_uid = api.kubectl_get("later")["metadata"]["uid"]
    assert blind.client.get(f"/campaigns/{later_uid}").status_code == 503
    assert api.detail(later_uid)["status"] == "scheduled"

    by = bystander()
    assert by["status"]["sent"] == 12 and stack.counts(by["metadata"]["uid"]) == {"sent": 12}
    # the API serves every namespace the caller may read: the namesake is its own campaign
    theirs = api.client.get(f"/campaigns/{by['metadata']['uid']}", headers=api.auth).json()
    assert (theirs["namespace"], theirs["sentCount"]) == (other, 12)
    api.control_plane.kubectl("delete", "namespace", other, "--wait=false")


# --- with the real operator and workers ---------------------------------------------------


def test_retry_flow_with_operator(
    api: Api, stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    outage = tmp_path / "outage"
    outage.touch()  # the mock provider throttles every send while this file exists
    stack = stack_factory(
        workers=1, NOTIFQ_MOCK_FAILURE_RATE="0", NOTIFQ_MOCK_OUTAGE_FILE=str(outage)
    )
    # 30 sends a second: the retried messages take 10 s, so they are still under way when
    # the answer and the next read are made (unpaced, one worker once re-sent all 300
    # before the API first looked)
    cid = api.create(name="flaky", recipientCount=300, retry={"attempts": 1}, rateLimit=30)[
        "campaignId"
    ]

    def reached(status: str) -> Callable[[], bool]:
        return lambda: api.detail(cid)["status"] == status

    wait_until(reached("completed_with_failures"), 90, "every message to fail")
    detail = api.detail(cid)
    assert detail["failedCount"] == 300
    assert detail["progress"]["failed"] == 300 and detail["progress"]["sent"] == 0
    page = api.client.get(
        f"/campaigns/{cid}/messages", params={"status": "failed", "limit": 250}, headers=api.auth
    ).json()
    assert len(page["items"]) == 250 and page["nextAfter"] == page["items"][-1]["seq"]
    assert page["items"][0]["recipient"].endswith("@example.com")
    assert page["items"][0]["attempts"] == 1 and page["items"][0]["lastError"]
    rest = api.client.get(
        f"/campaigns/{cid}/messages",
        params={"status": "failed", "limit": 250, "after": page["nextAfter"]},
        headers=api.auth,
    ).json()
    assert len(rest["items"]) == 50 and rest["nextAfter"] is None

    outage.unlink()
    resp = api.client.post(f"/campaigns/{cid}/retry", headers=api.auth)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"retriedCount": 300, "status": "processing"}
    # answered once the operator acted: the very next read shows the retry under way
    after = api.detail(cid)
    assert after["status"] == "processing" and after["progress"]["failed"] == 0
    wait_until(reached("completed"), 90, "the retried messages to be sent")
    detail = api.detail(cid)
    assert (detail["sentCount"], detail["failedCount"]) == (300, 0)
    assert detail["progress"]["sent"] == 300
    name = detail["resourceName"]
    assert api.kubectl_get(name)["status"]["retry"]["retried"] == 300
    assert stack.counts(cid) == {"sent": 300}
    again = api.client.post(f"/campaigns/{cid}/retry", headers=api.auth)
    assert again.status_code == 400
    # the list shows a stored campaign from the operator's snapshot in its row: the same
    # figures as the resource's status
    (listed,) = [c for c in api.client.get("/campaigns", headers=api.auth).json() if c["id"] == cid]
    assert (listed["status"], listed["sentCount"], listed["failedCount"]) == ("completed", 300, 0)
    assert listed["totalMessages"] == 300 and listed["name"] == "flaky"
