"""Kubernetes identities of API callers without a cluster: local accounts' defaults and
reserved names, OIDC claims mapped like kube-apiserver's --oidc-* flags, OIDC settings."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from notifq.api.accounts import AdminRow, check_kube_names
from notifq.api.authz import Access, Identity
from notifq.api.oidc import OidcVerifier
from notifq.api.security import InvalidToken
from notifq.core.settings import ApiSettings

ISSUER = "https://idp.example.com"


def row(user: str | None = None, groups: list[str] | None = None) -> AdminRow:
    return AdminRow(uuid.uuid4(), "ops@example.com", "hash", user, groups or [], 0)


def test_account_identity_defaults_and_authenticated_group() -> None:
    assert row().identity() == Identity("notifq:ops@example.com", ("system:authenticated",))
    assert row("ops", ["team-a", "system:authenticated"]).identity() == Identity(
        "ops", ("team-a", "system:authenticated")
    )


@pytest.mark.parametrize(
    ("user", "groups"),
    [("system:admin", []), (None, ["system:masters"]), ("", []), (None, [" padded "])],
)
def test_account_names_refused(user: str | None, groups: list[str]) -> None:
    with pytest.raises(ValueError):
        check_kube_names(user, groups)


def verifier(**kwargs: Any) -> OidcVerifier:
    return OidcVerifier(issuer=ISSUER, client_id="notifq", **kwargs)


def test_oidc_user_prefix_like_kube_apiserver() -> None:
    claims = {"sub": "42", "email": "c@example.com", "groups": ["a", "b"]}
    assert verifier().identity(claims).user == f"{ISSUER}#42"
    assert verifier(username_claim="email").identity(claims).user == "c@example.com"
    assert verifier(username_prefix="-").identity(claims).user == "42"
    assert verifier(username_prefix="oidc:").identity(claims).user == "oidc:42"
    got = verifier(groups_claim="groups", groups_prefix="idp:").identity(claims)
    assert got.groups == ("idp:a", "idp:b", "system:authenticated")
    assert verifier(groups_claim="groups").identity({**claims, "groups": "solo"}).groups == (
        "solo",
        "system:authenticated",
    )
    assert verifier().identity(claims).groups == ("system:authenticated",)


@pytest.mark.parametrize(
    ("kwargs", "claims"),
    [
        ({}, {"email": "no-sub@example.com"}),
        ({"username_claim": "email"}, {"email": "c@example.com", "email_verified": False}),
        ({"username_prefix": "-"}, {"sub": "system:admin"}),
        ({"groups_claim": "groups"}, {"sub": "x", "groups": ["system:masters"]}),
        ({"groups_claim": "groups"}, {"sub": "x", "groups": [1, 2]}),
    ],
)
def test_oidc_claims_refused(kwargs: dict[str, Any], claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        verifier(**kwargs).identity(claims)


def test_oidc_settings() -> None:
    base: dict[str, Any] = {"environment": "test", "jwt_secret": "x" * 40}
    with pytest.raises(ValidationError, match="CLIENT_ID"):
        ApiSettings(**base, oidc_issuer_url=ISSUER)
    with pytest.raises(ValidationError, match="https"):
        ApiSettings(**{**base, "environment": "production"},
                    oidc_issuer_url="http://idp", oidc_client_id="c")  # fmt: skip
    assert ApiSettings(**base, oidc_issuer_url="http://127.0.0.1:1", oidc_client_id="c")
    blank = ApiSettings(**base, oidc_issuer_url="", admin_kube_user="")
    assert blank.oidc_issuer_url is None and blank.admin_kube_user is None


def test_access_describes_itself_like_kubernetes() -> None:
    access = Access(Identity("alice"), "create", "team-a")
    assert access.describe() == (
        'user "alice" cannot create resource "campaigns" in API group "notifq.dev" '
        'in the namespace "team-a"'
    )
    assert "cluster-wide" in Access(Identity("alice"), "list", "").describe()
