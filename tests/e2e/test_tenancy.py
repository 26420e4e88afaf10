"""Namespaces as tenants on the real control plane: every REST action is authorized by
Kubernetes RBAC for the caller's Kubernetes identity (SubjectAccessReview), in the
campaign's namespace; local accounts and OIDC ID tokens (a local issuer over real HTTP)
name that identity; tokens die with a password change or the account; reads need a token
unless anonymous reads are on (then default namespace only, paged, cached, limited).

Each test runs next to a bystander campaign in another namespace that must complete."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import rbac
from api_client import Api, admin_cli
from bystander import Bystander
from harness import Stack, campaign, new_namespace
from oidc_issuer import running_issuer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

PASSWORD = "another long passphrase"
ALL = ["create", "get", "list", "patch", "delete"]


@pytest.fixture
def by(stack_factory: Callable[..., Stack]) -> Bystander:
    """A started bystander (operator and one worker); each test waits for it at its end."""
    by = Bystander(stack_factory(workers=1, NOTIFQ_MOCK_FAILURE_RATE="0"), count=2_000)
    by.start()
    return by


def test_kubernetes_rbac_decides_every_rest_action(
    api_factory: Callable[..., Api],
    by: Bystander,
    control_plane: Any,
    namespace: str,
    database_url: str,
    tmp_path: Path,
) -> None:
    api = api_factory()  # its own account may do everything everywhere (campaign_admins)
    other = new_namespace(control_plane, "tenant-b")
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    admin_cli(database_url, tmp_path, "create-admin", "--email", f"{alice}@example.com",
              "--kube-user", alice, password=PASSWORD)  # fmt: skip
    admin_cli(database_url, tmp_path, "create-admin", "--email", f"{bob}@example.com",
              "--kube-group", f"{bob}-readers", password=PASSWORD)  # fmt: skip
    rbac.grant(control_plane, namespace, ALL, user=alice, failures=True)
    rbac.grant(control_plane, other, ["get", "list"], group=f"{bob}-readers")
    as_alice = api.login(f"{alice}@example.com", PASSWORD)
    as_bob = api.login(f"{bob}@example.com", PASSWORD)
    me = api.client.get("/auth/me", headers=as_bob).json()
    assert me["user"] == f"notifq:{bob}@example.com"
    assert me["groups"] == [f"{bob}-readers", "system:authenticated"]

    # create: refused where RBAC says no (nothing is created), accepted where it says yes
    body = {"name": "tenant", "recipientCount": 20, "namespace": other}
    denied = api.client.post("/campaigns", json=body, headers=as_alice)
    assert denied.status_code == 403, denied.text
    assert f'user "{alice}" cannot create resource "campaigns"' in denied.json()["error"]
    assert control_plane.kubectl("get", "campaigns", "-n", other, "-o", "name").stdout == ""
    made = api.client.post("/campaigns", json={**body, "namespace": namespace}, headers=as_alice)
    assert made.status_code == 202, made.text
    mine = made.json()
    assert mine["namespace"] == namespace
    assert (
        api.kubectl_get(mine["resourceName"])["metadata"]["annotations"]["notifq.dev/requested-by"]
        == alice
    )
    # bob may only read in the other namespace: no create anywhere
    assert api.client.post("/campaigns", json=body, headers=as_bob).status_code == 403

    # a campaign in the other namespace, by someone else
    control_plane.kubectl("apply", "-f", "-", input=_yaml(campaign(
        "theirs", other, recipients={"generate": {"count": 5}}, suspend=True)))  # fmt: skip
    theirs = _uid(control_plane, other, "theirs")

    # list and detail: only where the user may list / get
    resp = api.client.get("/campaigns", params={"namespace": other}, headers=as_alice)
    assert resp.status_code == 403
    listed = api.client.get("/campaigns", headers=as_alice)
    assert listed.status_code == 200 and [c["id"] for c in listed.json()] == [mine["campaignId"]]
    assert api.client.get(f"/campaigns/{theirs}", headers=as_alice).status_code == 403
    assert api.client.get(f"/campaigns/{mine['campaignId']}", headers=as_bob).status_code == 403
    theirs_listed = api.client.get("/campaigns", params={"namespace": other}, headers=as_bob)
    assert [c["id"] for c in theirs_listed.json()] == [theirs]
    detail = api.client.get(f"/campaigns/{theirs}", headers=as_bob)
    assert detail.status_code == 200 and detail.json()["namespace"] == other

    # actions: patch / delete rights, checked before anything happens
    for verb in ("suspend", "resume", "cancel", "retry"):
        assert api.client.post(f"/campaigns/{theirs}/{verb}", headers=as_bob).status_code == 403
        assert api.client.post(f"/campaigns/{theirs}/{verb}", headers=as_alice).status_code == 403
    assert api.client.delete(f"/campaigns/{theirs}", headers=as_bob).status_code == 403
    untouched = _get(control_plane, other, "theirs")
    assert untouched["metadata"]["generation"] == 1 and untouched["spec"]["suspend"] is True
    assert "notifq.dev/retry-failed" not in (untouched["metadata"].get("annotations") or {})
    # recipients are personal data: the reports API's right (campaignfailures get)
    assert api.client.get(f"/campaigns/{theirs}/messages", headers=as_bob).status_code == 403
    ok = api.client.get(f"/campaigns/{mine['campaignId']}/messages", headers=as_alice)
    assert ok.status_code == 200
    cid = mine["campaignId"]
    assert api.client.post(f"/campaigns/{cid}/suspend", headers=as_alice).status_code == 200
    assert api.client.post(f"/campaigns/{cid}/resume", headers=as_alice).status_code == 200
    assert api.client.delete(f"/campaigns/{cid}", headers=as_alice).status_code == 204

    # the dashboard's namespace menu: exactly where each may list campaigns
    assert api.client.get("/namespaces", headers=as_alice).json()["items"] == [namespace]
    assert api.client.get("/namespaces", headers=as_bob).json()["items"] == [other]
    everyone = api.client.get("/namespaces", headers=api.auth).json()
    assert {namespace, other, by.namespace} <= set(everyone["items"])
    assert everyone["default"] == namespace
    assert api.client.get("/namespaces").status_code == 401

    by.assert_completed()


def test_reads_need_a_token_unless_anonymous_reads_are_on(
    api_factory: Callable[..., Api],
    by: Bystander,
    control_plane: Any,
    namespace: str,
) -> None:
    api = api_factory()
    ids = [api.create(name=f"r{i}", recipientCount=3)["campaignId"] for i in range(3)]
    assert api.client.get("/campaigns").status_code == 401
    assert api.client.get(f"/campaigns/{ids[0]}").status_code == 401
    assert api.client.get(f"/campaigns/{ids[0]}", headers=api.auth).status_code == 200

    anon = api_factory(
        anonymous_reads=True,
        anonymous_page_limit=2,
        anonymous_reads_per_minute=5,
        anonymous_cache_seconds=60,
    )
    page = anon.client.get("/campaigns", params={"limit": 50})
    assert page.status_code == 200, page.text
    assert len(page.json()) == 2 and page.headers["X-Total-Count"] == "3"  # paged
    assert anon.client.get(f"/campaigns/{ids[0]}").json()["id"] == ids[0]
    # the default namespace only: another is refused, its campaigns are not there
    other = new_namespace(control_plane, "anon-other")
    assert anon.client.get("/campaigns", params={"namespace": other}).status_code == 401
    control_plane.kubectl("apply", "-f", "-", input=_yaml(campaign(
        "hidden", other, recipients={"generate": {"count": 2}}, suspend=True)))  # fmt: skip
    assert anon.client.get(f"/campaigns/{_uid(control_plane, other, 'hidden')}").status_code == 404
    # cached: a new campaign shows to token holders at once, to anonymous callers later
    anon.create(name="newer", recipientCount=3)
    again = anon.client.get("/campaigns", params={"limit": 50})
    assert again.headers["X-Total-Count"] == "3"
    fresh = anon.client.get("/campaigns", headers=anon.auth)
    assert fresh.headers["X-Total-Count"] == "4"
    # limited per client address (5 per minute; 4 counted so far, the 401 was not)
    assert anon.client.get("/campaigns").status_code == 200
    limited = anon.client.get("/campaigns")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert anon.client.get("/campaigns", headers=anon.auth).status_code == 200  # not tokens

    by.assert_completed()


def test_password_change_and_removal_revoke_tokens(
    api_factory: Callable[..., Api],
    by: Bystander,
    database_url: str,
    tmp_path: Path,
) -> None:
    api = api_factory()
    dave, erin = (f"{n}-{uuid.uuid4().hex[:6]}@example.com" for n in ("dave", "erin"))
    for who in (dave, erin):
        admin_cli(database_url, tmp_path, "create-admin", "--email", who, password=PASSWORD)
    first, bystander_token = api.login(dave, PASSWORD), api.login(erin, PASSWORD)
    assert api.client.get("/auth/me", headers=first).status_code == 200

    # over REST: the account's own password change revokes every token it holds
    change = {"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"}
    assert api.client.post("/auth/password", json=change, headers=first).status_code == 204
    assert api.client.get("/auth/me", headers=first).status_code == 401
    assert (
        api.client.post("/auth/login", json={"email": dave, "password": PASSWORD}).status_code
        == 401
    )
    second = api.login(dave, "a brand new passphrase")
    assert api.client.get("/auth/me", headers=second).status_code == 200
    # from the command line: set-password, then remove-admin
    admin_cli(database_url, tmp_path, "set-password", "--email", dave, password="third passphrase")
    assert api.client.get("/auth/me", headers=second).status_code == 401
    third = api.login(dave, "third passphrase")
    assert api.client.get("/auth/me", headers=third).status_code == 200
    admin_cli(database_url, tmp_path, "remove-admin", "--email", dave)
    assert api.client.get("/auth/me", headers=third).status_code == 401
    # another account's token is untouched
    assert api.client.get("/auth/me", headers=bystander_token).status_code == 200
    # a token buys no more password guesses than the login form (limit 5 per window; the
    # failed login above counts for this client address too)
    wrong = {"currentPassword": "a wrong guess!", "newPassword": "whatever it is"}
    answers = [
        api.client.post("/auth/password", json=wrong, headers=bystander_token).status_code
        for _ in range(6)
    ]
    assert answers == [400] * 4 + [429] * 2

    by.assert_completed()


def test_oidc_id_tokens(
    api_factory: Callable[..., Api],
    by: Bystander,
    control_plane: Any,
    namespace: str,
) -> None:
    other = new_namespace(control_plane, "oidc-other")
    rbac.grant(control_plane, namespace, ALL, group="oidc:senders")
    with running_issuer() as issuer:
        api = api_factory(
            oidc_issuer_url=issuer.url,
            oidc_client_id="notifq",
            oidc_username_claim="email",
            oidc_groups_claim="groups",
            oidc_groups_prefix="oidc:",
        )

        def create(token: str, ns: str = namespace) -> int:
            body = {"name": "oidc", "recipientCount": 3, "namespace": ns}
            headers = {"Authorization": f"Bearer {token}"}
            return api.client.post("/campaigns", json=body, headers=headers).status_code

        for alg in ("RS256", "ES256"):
            assert create(issuer.token(alg)) == 202, alg
        me = api.client.get("/auth/me", headers={"Authorization": f"Bearer {issuer.token()}"})
        assert me.json() == {"user": "carol@example.com", "email": None,
                             "groups": ["oidc:senders", "system:authenticated"]}  # fmt: skip
        assert create(issuer.token(), other) == 403  # RBAC still decides
        assert create(issuer.token(groups=["others"])) == 403

        hs256 = jwt.encode({**jwt.decode(issuer.token(), options={"verify_signature": False})},
                           "x" * 32, algorithm="HS256", headers={"kid": "rsa-1"})  # fmt: skip
        unsigned = jwt.encode(jwt.decode(issuer.token(), options={"verify_signature": False}),
                              "", algorithm="none", headers={"kid": "rsa-1"})  # fmt: skip
        refused = {
            "wrong audience": issuer.token(aud="someone-else"),
            "wrong issuer": issuer.token(iss="https://evil.example.com"),
            "expired": issuer.token(exp=1_600_000_000, iat=1_599_999_000),
            "no expiry": issuer.token(exp=None),
            "unknown kid": issuer.token(kid="rotated-away"),
            "RS256 header on the EC key": issuer.token(kid="ec-1"),
            "HS256": hs256,
            "alg none": unsigned,
            "unverified email": issuer.token(email_verified=False),
        }
        for what, token in refused.items():
            assert create(token) == 401, what
        fetches = issuer.jwks_fetches
        for _ in range(5):  # made-up key ids do not make the API hammer the issuer
            assert create(issuer.token(kid=f"made-up-{uuid.uuid4().hex}")) == 401
        assert issuer.jwks_fetches <= fetches + 1
    by.assert_completed()


def _yaml(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest)


def _get(control_plane: Any, namespace: str, name: str) -> dict[str, Any]:
    out = control_plane.kubectl("get", "campaign", name, "-n", namespace, "-o", "json")
    return dict(json.loads(out.stdout))


def _uid(control_plane: Any, namespace: str, name: str) -> str:
    return str(_get(control_plane, namespace, name)["metadata"]["uid"])
