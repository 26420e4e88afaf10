"""OIDC ID tokens as bearer tokens, mapped to a Kubernetes identity like kube-apiserver does.

The settings mirror kube-apiserver's ``--oidc-*`` flags: issuer URL, client id (the
token's audience), username claim and prefix, groups claim and prefix. Keys come from the
issuer: its discovery document (``<issuer>/.well-known/openid-configuration``, whose
``issuer`` must be the configured one) names the JWKS, which is kept ``jwks_seconds`` and
fetched again early only when a token names a key id it lacks (key rotation), at most
once per :data:`REFRESH_SECONDS` (failed attempts included), so tokens with made-up key
ids cannot make us hammer the issuer. While the issuer cannot be reached, the keys last
fetched stay in use (as kube-apiserver does); only before the first fetch succeeds are
OIDC requests answered 503.

A token is accepted only when its header says RS256 or ES256 and names a key of the
matching type, its signature verifies with that key, ``iss`` is the issuer, ``aud``
holds the client id, and ``exp`` and ``iat`` are present (``exp`` in the future,
``nbf`` if present in the past, with :data:`LEEWAY_SECONDS` of clock skew).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from dataclasses import dataclass
from threading import Lock
from typing import Any

import jwt

from notifq.api.accounts import RESERVED_PREFIX
from notifq.api.authz import AUTHENTICATED, Identity
from notifq.api.errors import IssuerUnavailable
from notifq.api.security import InvalidToken

log = logging.getLogger(__name__)

KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}
"""Accepted algorithms and the key type each needs (never HS*, never none)."""
REFRESH_SECONDS = 10.0
LEEWAY_SECONDS = 30
TIMEOUT = 5.0
MAX_DOCUMENT_BYTES = 1 << 20


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a token claims, unverified (only to pick who verifies it)."""
    try:
        iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    return iss if isinstance(iss, str) else None


def _get_json(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            data = json.loads(resp.read(MAX_DOCUMENT_BYTES + 1)[:MAX_DOCUMENT_BYTES])
    except (OSError, ValueError) as exc:
        raise IssuerUnavailable(f"OIDC: cannot fetch {url}: {exc}") from exc
    if not isinstance(data, dict):
        raise IssuerUnavailable(f"OIDC: {url} is not a JSON object")
    return data


@dataclass
class OidcVerifier:
    """Verifies ID tokens of one issuer for one client and names their Kubernetes user."""

    issuer: str
    client_id: str
    username_claim: str = "sub"
    username_prefix: str | None = None
    """Prefix of user names; None: kube-apiserver's default (none for ``email``, else
    ``<issuer>#``); ``"-"``: none."""
    groups_claim: str | None = None
    groups_prefix: str = ""
    jwks_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if not self.issuer.startswith(("https://", "http://")):
            raise ValueError("the OIDC issuer URL must be an http(s) URL")
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = float("-inf")
        self._tried = float("-inf")
        """When a fetch was last started (successful or not)."""
        self._lock = Lock()

    # keys --------------------------------------------------------------------
    def _fetch(self) -> dict[str, jwt.PyJWK]:
        doc = _get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if doc.get("issuer") != self.issuer:
            raise IssuerUnavailable(
                f"OIDC: the discovery document names issuer {doc.get('issuer')!r}, "
                f"not {self.issuer!r}"
            )
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise IssuerUnavailable("OIDC: the discovery document has no http(s) jwks_uri")
        keys: dict[str, jwt.PyJWK] = {}
        for entry in _get_json(uri).get("keys") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            if entry.get("use", "sig") != "sig" or entry.get("kty") not in KEY_TYPES.values():
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK.from_dict(entry)
            except jwt.PyJWTError as exc:
                log.warning("OIDC: skipping key %s of %s: %s", entry["kid"], uri, exc)
        log.info("OIDC: %d signing key(s) from %s", len(keys), uri)
        return keys

    def key(self, kid: str) -> jwt.PyJWK:
        """The issuer's key ``kid``; :class:`InvalidToken` if the issuer has none.

        Fetches are tried at most once per :data:`REFRESH_SECONDS`, whatever the outcome.
        Before the first success, requests wait for that fetch (and get
        :class:`IssuerUnavailable` if it fails). Afterwards one request refreshes while the
        others go on with the keys held; a refresh that fails keeps them (an issuer outage
        is not an outage of every OIDC user) and is tried again 10 s later."""
        with self._lock:
            now = time.monotonic()
            age = now - self._fetched
            due = age > self.jwks_seconds or (kid not in self._keys and age > REFRESH_SECONDS)
            attempt = due and now - self._tried > REFRESH_SECONDS
            if attempt:
                self._tried = now
            if not self._keys:
                if not attempt:
                    raise IssuerUnavailable("OIDC: the issuer's keys are not fetched yet")
                self._keys, self._fetched = self._fetch(), time.monotonic()
                attempt = False
        if attempt:
            try:
                keys = self._fetch()
            except IssuerUnavailable as exc:
                log.warning("OIDC: keeping %d key(s) %.0f s old: %s", len(self._keys), age, exc)
            else:
                with self._lock:
                    self._keys, self._fetched = keys, time.monotonic()
        found = self._keys.get(kid)
        if found is None:
            raise InvalidToken("unknown signing key")
        return found

    # tokens ------------------------------------------------------------------
    def verify(self, token: str) -> Identity:
        """The Kubernetes identity of a valid ID token; :class:`InvalidToken` otherwise
        (:class:`IssuerUnavailable` when the keys cannot be fetched). Blocking."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in KEY_TYPES:
            raise InvalidToken(f"algorithm {alg!r} not accepted")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token names no key")
        key = self.key(kid)
        if key.key_type != KEY_TYPES[alg] or key.algorithm_name != alg:
            raise InvalidToken("the key does not fit the algorithm")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.client_id,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        return self.identity(claims)

    def identity(self, claims: dict[str, Any]) -> Identity:
        """The user and groups the claims name, prefixed as kube-apiserver would."""
        name = claims.get(self.username_claim)
        if not isinstance(name, str) or not name:
            raise InvalidToken(f"no {self.username_claim!r} claim")
        if self.username_claim == "email" and claims.get("email_verified", True) is not True:
            raise InvalidToken("the email is not verified")
        prefix = self.username_prefix
        if prefix is None:
            prefix = "" if self.username_claim == "email" else self.issuer + "#"
        elif prefix == "-":
            prefix = ""
        raw = claims.get(self.groups_claim) if self.groups_claim else None
        if raw is None:
            raw = []
        elif isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(g, str) for g in raw):
            raise InvalidToken(f"the {self.groups_claim!r} claim is not a list of strings")
        user = prefix + name
        groups = [self.groups_prefix + g for g in raw]
        for n in (user, *groups):
            if n.startswith(RESERVED_PREFIX):
                raise InvalidToken(f"{RESERVED_PREFIX}* names are reserved")
        return Identity(user=user, groups=tuple(dict.fromkeys([*groups, AUTHENTICATED])))
