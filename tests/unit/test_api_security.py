"""API security primitives without services: JWT decoding refuses every forged or
foreign token, bcrypt hashing, and the pure resource/REST mappings."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest

from notifq.api import security, views
from notifq.api.kube import resource_name
from notifq.api.schemas import CampaignCreate, RetryPolicy
from notifq.core.resource import DISPLAY_NAME_ANNOTATION

SECRET = "s" * 64
SUB = str(uuid.uuid4())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, object], claims: dict[str, object], signature: str = "") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), signature])


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": SUB, "ver": 0, "iat": now, "exp": now + 3600, **overrides}


def test_valid_token_round_trips() -> None:
    token = security.issue_token(SUB, SECRET, 60, version=3)
    assert security.decode_token(token, SECRET) == (SUB, 3)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    body = jwt.decode(token, options={"verify_signature": False})
    assert body["exp"] - body["iat"] == 60


def test_a_verified_token_is_kept_until_it_expires_and_only_for_its_secret() -> None:
    token = security.issue_token(SUB, SECRET, 2, version=5)
    assert security.decode_token(token, SECRET) == (SUB, 5)
    assert security.VERIFIED.get((SECRET, token)) == (SUB, 5)  # the next read skips the check
    with pytest.raises(security.InvalidToken):  # another secret checks it afresh
        security.decode_token(token, "another-secret-of-32-characters!" * 2)
    time.sleep(2.1)
    with pytest.raises(security.InvalidToken):  # expired: checked again, and refused
        security.decode_token(token, SECRET)


def test_alg_none_is_refused() -> None:
    with pytest.raises(security.InvalidToken):
        security.decode_token(forge({"alg": "none", "typ": "JWT"}, claims()), SECRET)


def test_other_hmac_algorithm_is_refused() -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS512")
    with pytest.raises(security.InvalidToken):
        security.decode_token(token, SECRET)


def test_rs256_confusion_is_refused() -> None:
    # An RS256 header "signed" with the HMAC secret as if it were a public key.
    header = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    import hashlib
    import hmac

    sig = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(security.InvalidToken):
        security.decode_token(f"{header}.{payload}.{b64(sig)}", SECRET)


def test_expired_token_is_refused() -> None:
    token = security.issue_token(SUB, SECRET, 60, now=time.time() - 3600)
    with pytest.raises(security.InvalidToken):
        security.decode_token(token, SECRET)


def test_tampered_payload_is_refused() -> None:
    header, _, sig = security.issue_token(SUB, SECRET, 60).split(".")
    payload = b64(json.dumps(claims(sub=str(uuid.uuid4()))).encode())
    with pytest.raises(security.InvalidToken):
        security.decode_token(f"{header}.{payload}.{sig}", SECRET)


def test_wrong_secret_is_refused() -> None:
    token = security.issue_token(SUB, "another-secret-of-32-characters!" * 2, 60)
    with pytest.raises(security.InvalidToken):
        security.decode_token(token, SECRET)


@pytest.mark.parametrize("missing", ["sub", "ver", "exp", "iat"])
def test_token_without_required_claim_is_refused(missing: str) -> None:
    c = claims()
    del c[missing]
    with pytest.raises(security.InvalidToken):
        security.decode_token(jwt.encode(c, SECRET, algorithm="HS256"), SECRET)


@pytest.mark.parametrize("ver", ["0", None, True, 1.5])
def test_token_version_must_be_an_integer(ver: object) -> None:
    token = jwt.encode(claims(ver=ver), SECRET, algorithm="HS256")
    with pytest.raises(security.InvalidToken):
        security.decode_token(token, SECRET)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "...", "Bearer x"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(security.InvalidToken):
        security.decode_token(garbage, SECRET)


def test_passwords_hash_and_verify() -> None:
    h = security.hash_password("correct horse", rounds=4)
    assert h.startswith("$2")
    assert security.verify_password("correct horse", h)
    assert not security.verify_password("wrong horse", h)
    assert not security.verify_password("correct horse", None)
    assert not security.verify_password("x" * 100, h)  # over bcrypt's 72 bytes: never matches
    assert not security.verify_password("correct horse", "not-a-bcrypt-hash")


@pytest.mark.parametrize("bad", ["short", "é" * 40])
def test_unusable_passwords_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        security.hash_password(bad)


@pytest.mark.parametrize(
    ("display", "prefix"),
    [
        ("Black Friday 2025!", "black-friday-2025-"),
        ("   ", "campaign-"),
        ("Ünïcödé", "n-c-d-"),
        ("x" * 300, "x" * 40 + "-"),
    ],
)
def test_resource_names_are_dns_1123(display: str, prefix: str) -> None:
    name = resource_name(display)
    assert name.startswith(prefix)
    assert len(name) <= 63
    assert name[-6] == "-" and name[-5:].isalnum()
    assert name == name.lower() and not name.startswith("-")


def test_create_request_maps_to_spec() -> None:
    body = CampaignCreate(name="x", recipientCount=5, targetEmail="me@company.com")
    spec = views.spec_for(body)
    assert spec["recipients"] == {"generate": {"count": 4, "include": ["me@company.com"]}}
    assert views.expected_total(spec) == 5
    one = views.spec_for(CampaignCreate(name="x", recipientCount=1, targetEmail="me@company.com"))
    assert one["recipients"] == {"list": ["me@company.com"]}
    for blank in ("", "   ", None):
        body = CampaignCreate.model_validate(
            {"name": "x", "recipientCount": 3, "targetEmail": blank}
        )
        assert body.targetEmail is None
        assert views.spec_for(body)["recipients"] == {"generate": {"count": 3}}
    listed = views.spec_for(
        CampaignCreate(name="x", recipients=["a@b.co"], targetEmail="me@company.com")
    )
    assert listed["recipients"] == {"list": ["me@company.com", "a@b.co"]}
    body = CampaignCreate(
        name="x", recipients=["a@b.co"], retry=RetryPolicy(attempts=1), subject="Hi", rateLimit=5
    )
    spec = views.spec_for(body)
    assert spec["recipients"] == {"list": ["a@b.co"]}
    assert spec["retry"] == {"attempts": 1}
    assert spec["subject"] == "Hi" and spec["rateLimit"] == 5
    assert views.expected_total(spec) == 1


def test_resource_maps_to_reference_contract() -> None:
    res = {
        "metadata": {
            "uid": SUB,
            "name": "welcome-abcde",
            "annotations": {DISPLAY_NAME_ANNOTATION: "Welcome"},
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "managedFields": [{"time": "2025-01-01T00:00:05Z"}],
        },
        "spec": {"recipients": {"generate": {"count": 10}}},
        "status": {"phase": "CompletedWithFailures", "total": 10, "sent": 8, "failed": 2},
    }
    pub = views.public(res)
    assert (pub.id, pub.name, pub.resourceName) == (SUB, "Welcome", "welcome-abcde")
    assert (pub.totalMessages, pub.sentCount, pub.failedCount) == (10, 8, 2)
    assert pub.status == "completed_with_failures"
    assert pub.updatedAt > pub.createdAt
    del res["status"]
    assert views.public(res).status == "pending"
    assert views.public(res).totalMessages == 10


def test_every_phase_has_a_reference_status() -> None:
    phases = [
        "Pending",
        "Scheduled",
        "Processing",
        "Suspended",
        "Completed",
        "CompletedWithFailures",
        "Cancelled",
        "Failed",
    ]
    assert [views.reference_status(p) for p in phases] == [
        "pending",
        "scheduled",
        "processing",
        "suspended",
        "completed",
        "completed_with_failures",
        "cancelled",
        "failed",
    ]


def test_device_tokens_verify_and_any_other_cookie_is_none() -> None:
    secret = "s" * 48
    token = security.issue_device("ann@example.com", secret)
    nonce = security.device_nonce(token, "ann@example.com", secret)
    assert nonce is not None and token.startswith(nonce + ".")
    assert security.device_nonce(token, "bob@example.com", secret) is None
    for cookie in (f"{nonce}.é", f"{nonce}.{token.split('.')[1][:-1]}é", "é.é", "", "a.b.c"):
        assert security.device_nonce(cookie, "ann@example.com", secret) is None
