"""A tiny OIDC issuer for tests: a real HTTP server on a free loopback port serving its
discovery document and JWKS (an RSA and an EC P-256 key made with ``cryptography``), and
ID tokens signed with those keys."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class Issuer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.jwks_fetches = 0
        self.down = False
        """While True every request is answered 503 (an issuer outage), and counted."""
        self.refused = 0

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        return {"keys": [{**rsa_jwk, "kid": "rsa-1", "use": "sig"},
                         {**ec_jwk, "kid": "ec-1", "use": "sig"}]}  # fmt: skip

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.url, "jwks_uri": f"{self.url}/keys",
                "id_token_signing_alg_values_supported": ["RS256", "ES256"]}  # fmt: skip

    def token(self, alg: str = "RS256", kid: str | None = None, **claims: Any) -> str:
        """An ID token; ``claims`` override the defaults (None removes one)."""
        now = int(time.time())
        body = {"iss": self.url, "aud": "notifq", "sub": "carol-id", "iat": now,
                "exp": now + 600, "email": "carol@example.com", "groups": ["senders"]}  # fmt: skip
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        key = self.ec if alg == "ES256" else self.rsa
        default_kid = "ec-1" if alg == "ES256" else "rsa-1"
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid or default_kid})


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    issuer: Issuer | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert issuer is not None
            if issuer.down:
                issuer.refused += 1
                self.send_error(503)
                return
            if self.path == "/.well-known/openid-configuration":
                body = issuer.discovery()
            elif self.path == "/keys":
                issuer.jwks_fetches += 1
                body = issuer.jwks()
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer = Issuer(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
