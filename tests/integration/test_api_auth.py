"""The API against real Postgres and Redis (Kubernetes unreachable on purpose):
login, the Redis-backed login limiter, bearer-token attacks over HTTP, request
limits, validation errors, health/readiness/metrics and ``create-admin``."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from kubernetes import client as k8s

from notifq.api.app import create_app
from notifq.api.kube import CampaignClient
from notifq.api.testing import serve_in_thread
from notifq.core.settings import ApiSettings

ADMIN = "ops@example.com"
PASSWORD = "a long and private passphrase"
SECRET = secrets.token_urlsafe(48)


def settings_for(database_url: str, redis_url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "redis_url": redis_url,
        "queue_prefix": f"apitest{uuid.uuid4().hex[:8]}",
        "jwt_secret": SECRET,
        "admin_email": ADMIN,
        "admin_password": PASSWORD,
        "login_attempts": 3,
        "login_window_seconds": 60,
        "max_body_bytes": 4096,
        **overrides,
    }
    return ApiSettings(**values)


def unreachable_kubernetes() -> CampaignClient:
    cfg = k8s.Configuration(host="http://127.0.0.1:9")
    cfg.retries = 0
    return CampaignClient(k8s.ApiClient(cfg), "default")


@pytest.fixture
def api(database_url: str, redis_server: Any) -> Iterator[httpx.Client]:
    app = create_app(
        settings_for(database_url, redis_server.url), campaigns_client=unreachable_kubernetes()
    )
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def login(api: httpx.Client, email: str = ADMIN, password: str = PASSWORD) -> httpx.Response:
    return api.post("/auth/login", json={"email": email, "password": password})


def token(api: httpx.Client) -> str:
    resp = login(api)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


def test_login_returns_a_24h_token(api: httpx.Client, database_url: str) -> None:
    resp = login(api, email="  OPS@example.com ")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["admin"]["email"] == ADMIN
    claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == body["admin"]["id"]
    assert claims["exp"] - claims["iat"] == 24 * 3600
    with psycopg.connect(database_url) as conn:
        (stored,) = conn.execute(
            "SELECT password_hash FROM admin WHERE email = %s", (ADMIN,)
        ).fetchone() or (None,)
    assert stored is not None and stored.startswith("$2") and PASSWORD not in stored


def test_bad_credentials_get_one_message(api: httpx.Client) -> None:
    unknown = login(api, email="nobody@example.com")
    wrong = login(api, password="not the password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json() == {"error": "invalid email or password"}


@pytest.mark.parametrize("body", [{}, {"email": ADMIN}, {"password": PASSWORD}, {"email": ""}])
def test_missing_login_fields_are_400(api: httpx.Client, body: dict[str, str]) -> None:
    resp = api.post("/auth/login", json=body)
    assert resp.status_code == 400
    assert resp.json()["error"]
    assert PASSWORD not in resp.text


def test_malformed_json_is_400(api: httpx.Client) -> None:
    resp = api.post(
        "/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400


def test_limiter_blocks_after_n_failures_per_account(
    api: httpx.Client, database_url: str, redis_server: Any
) -> None:
    for _ in range(3):
        assert login(api, password="guess").status_code == 401
    blocked = login(api)  # even the right password: the account is locked for the window
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 60
    # The count lives in Redis: a second replica (another app, same prefix) agrees.
    other = create_app(
        settings_for(database_url, redis_server.url, queue_prefix=_prefix_of(api, redis_server)),
        campaigns_client=unreachable_kubernetes(),
    )
    with serve_in_thread(other) as url, httpx.Client(base_url=url, timeout=30) as replica:
        assert login(replica).status_code == 429


def _prefix_of(api: httpx.Client, redis_server: Any) -> str:
    import redis

    r = redis.Redis.from_url(redis_server.url)
    try:
        keys = [k.decode() for k in r.scan_iter("apitest*:login:acct:*")]
        ttls = {k: r.ttl(k) for k in keys}
    finally:
        r.close()
    newest = max(ttls, key=lambda k: ttls[k])
    return str(newest).split(":login:")[0]


def test_limiter_counts_per_client_ip(api: httpx.Client) -> None:
    for i in range(3):
        assert login(api, email=f"someone{i}@example.com").status_code == 401
    resp = login(api, email="yet-another@example.com")
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) > 0


def test_an_anonymous_flood_does_not_lock_out_a_known_device(api: httpx.Client) -> None:
    """Failures from everyone else lock the account for clients without a device cookie;
    the admin's own client, which logged in before, still gets in."""
    assert login(api).status_code == 200  # the client now holds a device cookie
    assert api.cookies.get("notifq_device")
    base = str(api.base_url)
    for i in range(4):
        with httpx.Client(base_url=base, timeout=30) as attacker:
            headers = {"X-Forwarded-For": f"198.51.100.{i}"}  # many addresses
            attacker.post(
                "/auth/login", json={"email": ADMIN, "password": "guess"}, headers=headers
            )
    with httpx.Client(base_url=base, timeout=30) as stranger:
        assert login(stranger).status_code == 429  # a new client: the account is locked
        stranger.cookies.set("notifq_device", "forged.mac", path="/auth/login")
        assert login(stranger).status_code == 429  # a made-up device cookie counts for nothing
    assert login(api).status_code == 200
    # the device's own failures lock that device only
    for _ in range(3):
        assert login(api, password="guess").status_code == 401
    assert login(api).status_code == 429


def test_a_device_cookie_belongs_to_its_account(api: httpx.Client) -> None:
    assert login(api).status_code == 200
    device = api.cookies.get("notifq_device")
    with httpx.Client(base_url=str(api.base_url), timeout=30) as other:
        other.cookies.set("notifq_device", str(device), path="/auth/login")
        for i in range(3):
            other.post(
                "/auth/login",
                json={"email": "victim@example.com", "password": "guess"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
        # counted as a stranger for that account: the account key filled up
        resp = other.post(
            "/auth/login",
            json={"email": "victim@example.com", "password": "guess"},
            headers={"X-Forwarded-For": "198.51.100.99"},
        )
        assert resp.status_code == 429


def test_clients_behind_a_trusted_proxy_are_keyed_apart(
    database_url: str, redis_server: Any
) -> None:
    """X-Forwarded-For names the client only when the peer is a trusted proxy."""

    def attempts(trusted: list[str]) -> list[int]:
        app = create_app(
            settings_for(database_url, redis_server.url), campaigns_client=unreachable_kubernetes()
        )
        codes = []
        with (
            serve_in_thread(app, trusted_proxies=trusted) as url,
            httpx.Client(base_url=url, timeout=30) as proxy,
        ):
            for i in range(4):  # three failures from one client, then another client
                ip = "203.0.113.5" if i < 3 else "203.0.113.6"
                body = {"email": f"user{i}@example.com", "password": "guess"}
                r = proxy.post("/auth/login", json=body, headers={"X-Forwarded-For": ip})
                codes.append(r.status_code)
        return codes

    assert attempts(["127.0.0.1"]) == [401, 401, 401, 401]  # the 4th client is not locked
    assert attempts([]) == [401, 401, 401, 429]  # untrusted: everyone is the proxy's address


def test_success_does_not_use_up_attempts(api: httpx.Client) -> None:
    for _ in range(5):
        assert login(api).status_code == 200


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(kind: str, admin_id: str) -> str:
    now = int(time.time())
    claims = {"sub": admin_id, "iat": now, "exp": now + 3600}
    if kind == "alg-none":
        header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{header}.{b64(json.dumps(claims).encode())}."
    if kind == "hs512":
        return jwt.encode(claims, SECRET * 2, algorithm="HS512")
    if kind == "expired":
        return jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, SECRET, "HS256")
    if kind == "wrong-secret":
        return jwt.encode(claims, secrets.token_urlsafe(48), algorithm="HS256")
    if kind == "tampered":
        header, _, sig = jwt.encode(claims, SECRET, algorithm="HS256").split(".")
        evil = b64(json.dumps({**claims, "sub": str(uuid.uuid4())}).encode())
        return f"{header}.{evil}.{sig}"
    if kind == "unknown-admin":
        return jwt.encode({**claims, "sub": str(uuid.uuid4())}, SECRET, algorithm="HS256")
    if kind == "no-sub":
        return jwt.encode({"iat": now, "exp": now + 60}, SECRET, algorithm="HS256")
    if kind == "garbage":
        return "not.a.token"
    raise AssertionError(kind)


PROTECTED = f"/campaigns/{uuid.uuid4()}/messages"


@pytest.mark.parametrize(
    "kind",
    [
        "alg-none",
        "hs512",
        "expired",
        "wrong-secret",
        "tampered",
        "unknown-admin",
        "no-sub",
        "garbage",
    ],
)
def test_forged_tokens_are_401(api: httpx.Client, kind: str) -> None:
    admin_id = login(api).json()["admin"]["id"]
    resp = api.get(PROTECTED, headers={"Authorization": f"Bearer {forged(kind, admin_id)}"})
    assert resp.status_code == 401, resp.text
    assert resp.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer  x y", "Basic b3BzOnB3", "Token abc", "bearer"]
)
def test_missing_or_garbage_header_is_401(api: httpx.Client, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    resp = api.get(PROTECTED, headers=headers)
    assert resp.status_code == 401
    resp = api.post("/campaigns", json={"name": "x"}, headers=headers)
    assert resp.status_code == 401


def test_valid_token_passes_auth(api: httpx.Client) -> None:
    # Past authentication the route needs Kubernetes, which is unreachable here: 503, not 401.
    resp = api.get(PROTECTED, headers={"Authorization": f"Bearer {token(api)}"})
    assert resp.status_code == 503
    assert resp.json()["error"] == "the Kubernetes API is unavailable; try again shortly"


def test_oversized_body_is_413(api: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {token(api)}"}
    resp = api.post("/campaigns", json={"name": "x" * 10_000}, headers=auth)
    assert resp.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    resp = api.post(
        "/campaigns", content=chunks(), headers={**auth, "content-type": "application/json"}
    )
    assert resp.status_code == 413


def test_health_readiness_and_metrics(api: httpx.Client) -> None:
    assert api.get("/health").json() == {"status": "ok", "checks": {}}
    ready = api.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"] == "ok" and checks["redis"] == "ok"
    assert checks["kubernetes"].startswith("error")
    assert "127.0.0.1" not in ready.text and "9" not in checks["kubernetes"]  # no internals
    metrics = api.get("/metrics")
    assert metrics.status_code == 200
    assert 'notifq_api_requests_total{method="GET",route="/readyz",status="503"}' in metrics.text


def test_openapi_documents_400_not_422(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    for path in schema["paths"].values():
        for op in path.values():
            assert "422" not in op["responses"]
    assert api.get("/docs").status_code == 200


def test_create_admin_cli(database_url: str) -> None:
    email = f"cli-{uuid.uuid4().hex[:6]}@example.com"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFQ_")}
    env["NOTIFQ_DATABASE_URL"] = database_url
    argv = [sys.executable, "-m", "notifq.api.main", "create-admin", "--email", email]
    done = subprocess.run(
        argv, check=False, input="short\n", env=env, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    done = subprocess.run(argv, check=False, input="", env=env, capture_output=True, text=True)
    assert done.returncode == 2  # no default password, ever
    done = subprocess.run(
        argv, check=False, input=f"{PASSWORD}\n", env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT password_hash FROM admin WHERE email = %s", (email,)).fetchone()
    assert row is not None and row[0].startswith("$2")
