"""One-click unsubscribe (RFC 8058): signed per-recipient, per-namespace tokens and the
headers that carry them.

A token is ``<key id>.<payload>.<mac>``: the payload is the namespace and the recipient
(base64url, so the link alone says whom to unsubscribe where, with no database read), the
MAC an HMAC-SHA256 over key id and payload with that key's secret. Keys rotate: the
first configured key signs, every configured key verifies, so a new key goes in front and
an old one leaves once the mail it signed is old enough. A token never expires by itself
(mailbox providers keep messages for years); dropping its key ends it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

_KID = re.compile(r"^[A-Za-z0-9]{1,32}$")
MIN_SECRET = 32
"""Shortest secret accepted (characters)."""


class InvalidToken(Exception):
    """The token is malformed, signed with no configured key, or altered."""


class InvalidKeys(ValueError):
    """The configured key list cannot be used."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Keys:
    """The key ring: (id, secret) pairs, the first signs."""

    ring: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, spec: str) -> Keys:
        """``id:secret,id:secret``; raises :class:`InvalidKeys` with what is wrong."""
        ring: list[tuple[str, bytes]] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            kid, sep, secret = part.partition(":")
            if not sep or not _KID.match(kid):
                raise InvalidKeys("each unsubscribe key is 'id:secret' with an alphanumeric id")
            if len(secret) < MIN_SECRET:
                raise InvalidKeys(f"unsubscribe key {kid!r}: secret shorter than {MIN_SECRET}")
            if any(k == kid for k, _ in ring):
                raise InvalidKeys(f"unsubscribe key id {kid!r} appears twice")
            ring.append((kid, secret.encode()))
        return cls(tuple(ring))

    def __bool__(self) -> bool:
        return bool(self.ring)

    def _mac(self, secret: bytes, kid: str, payload: str) -> str:
        return _b64(hmac.new(secret, f"{kid}.{payload}".encode(), hashlib.sha256).digest())

    def sign(self, namespace: str, recipient: str) -> str:
        """The token of ``recipient`` in ``namespace`` (lower-cased), by the first key."""
        if not self.ring:
            raise InvalidKeys("no unsubscribe key configured")
        kid, secret = self.ring[0]
        payload = _b64(f"{namespace}\n{recipient.lower()}".encode())
        return f"{kid}.{payload}.{self._mac(secret, kid, payload)}"

    def verify(self, token: str) -> tuple[str, str]:
        """(namespace, recipient) of a token signed by any configured key."""
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("malformed token")
        kid, payload, mac = parts
        secret = next((s for k, s in self.ring if k == kid), None)
        if secret is None:
            raise InvalidToken("token signed with an unknown key")
        # bytes: a non-ASCII str makes compare_digest raise instead of answer
        if not hmac.compare_digest(self._mac(secret, kid, payload).encode(), mac.encode()):
            raise InvalidToken("bad token signature")
        try:
            namespace, sep, recipient = _unb64(payload).decode().partition("\n")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidToken("malformed token") from exc
        if not sep or not namespace or not recipient:
            raise InvalidToken("malformed token")
        return namespace, recipient


def list_unsubscribe_headers(
    keys: Keys, base_url: str, namespace: str, recipient: str, mailto: str | None = None
) -> list[tuple[str, str]]:
    """``List-Unsubscribe`` (HTTPS, then the optional mailto) and ``List-Unsubscribe-Post``."""
    url = f"{base_url.rstrip('/')}/unsubscribe/{keys.sign(namespace, recipient)}"
    value = f"<{url}>"
    if mailto:
        value += f", <mailto:{mailto}?subject=unsubscribe>"
    return [
        ("List-Unsubscribe", value),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]
