"""Passwords (bcrypt) and access tokens (JWT, HS256 only).

Tokens carry ``sub`` (the admin id), ``ver`` (the account's token version), ``iat``
and ``exp``; decoding accepts exactly HS256 with our secret and requires all four
claims, so ``alg: none``, other algorithms, expired, tampered and foreign tokens are
all refused. A token whose ``ver`` is not the account's current one (the password
changed since) is refused by the caller, which reads the account anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import uuid
from functools import lru_cache

import bcrypt
import jwt

from notifq.api.ttlcache import TtlCache

ALGORITHM = "HS256"
BCRYPT_MAX_BYTES = 72
MIN_PASSWORD_LENGTH = 8


class InvalidToken(Exception):
    """A bearer token that is missing, malformed, expired or not ours."""


def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash of ``password`` (refuses what bcrypt would silently truncate)."""
    raw = password.encode()
    if len(password) < MIN_PASSWORD_LENGTH or len(raw) > BCRYPT_MAX_BYTES:
        raise ValueError(
            f"a password must be {MIN_PASSWORD_LENGTH} characters to {BCRYPT_MAX_BYTES} bytes long"
        )
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds)).decode()


@lru_cache(maxsize=1)
def _dummy_hash() -> bytes:
    return bcrypt.hashpw(uuid.uuid4().bytes, bcrypt.gensalt())


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches; costs one bcrypt check even without a hash (timing)."""
    raw = password.encode()
    if password_hash is None or len(raw) > BCRYPT_MAX_BYTES:
        bcrypt.checkpw(raw[:BCRYPT_MAX_BYTES], _dummy_hash())
        return False
    try:
        return bcrypt.checkpw(raw, password_hash.encode())
    except ValueError:
        return False


def issue_token(
    subject: str, secret: str, ttl_seconds: int, version: int = 0, now: float | None = None
) -> str:
    """A signed token for ``subject`` at token ``version``, valid ``ttl_seconds``."""
    iat = int(now if now is not None else time.time())
    claims = {"sub": subject, "ver": version, "iat": iat, "exp": iat + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


VERIFIED = TtlCache(10_000)
"""Tokens whose signature and claims were checked, until they expire: a client polling
with one token has it verified once (the check was a tenth of a read's CPU). Keyed by
the secret too, so a new secret verifies afresh. The account and its token version are
still read for every request (:func:`deps.authenticate`)."""


def decode_token(token: str, secret: str) -> tuple[str, int]:
    """The subject and token version of a valid token; :class:`InvalidToken` otherwise."""
    known: tuple[str, int] | None = VERIFIED.get((secret, token))
    if known is not None:
        return known
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "ver", "exp", "iat"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    sub, ver = claims.get("sub"), claims.get("ver")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("token has no subject")
    if not isinstance(ver, int) or isinstance(ver, bool):
        raise InvalidToken("token has no version")
    VERIFIED.put((secret, token), (sub, ver), float(claims["exp"]) - time.time())
    return sub, ver


DEVICE_COOKIE = "notifq_device"


def _device_mac(email: str, nonce: str, secret: str) -> str:
    msg = f"device\x00{email.strip().lower()}\x00{nonce}".encode()
    digest = hmac.new(secret.encode(), msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_device(email: str, secret: str) -> str:
    """A device token for a client that just logged in as ``email`` (``nonce.mac``)."""
    nonce = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    return f"{nonce}.{_device_mac(email, nonce, secret)}"


def device_nonce(token: str | None, email: str, secret: str) -> str | None:
    """The nonce of a device token issued for ``email`` with ``secret``, else None."""
    if not token or token.count(".") != 1 or len(token) > 200:
        return None
    nonce, mac = token.split(".")
    if not nonce or not hmac.compare_digest(
        mac.encode(), _device_mac(email, nonce, secret).encode()
    ):
        return None
    return nonce
