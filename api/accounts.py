"""Local accounts (the ``admin`` table): passwords, Kubernetes identity, token version.

Every account acts in Kubernetes as a user and groups of its own (``kube_user``, default
``notifq:<email>``; ``kube_groups``), and the API asks Kubernetes whether that identity may
do what is asked. Names starting with ``system:`` are refused for them: those are the API
server's own (``system:masters`` would be a superuser), and a notifq account must not be
able to claim one. ``token_version`` is copied into each token the account gets; a new
password (or a removed account) makes every older token invalid at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from notifq.api.authz import AUTHENTICATED, Identity
from notifq.api.store import _fetch

USER_PREFIX = "notifq:"
"""Default Kubernetes user of an account: this prefix and the account's email."""
RESERVED_PREFIX = "system:"


@dataclass(frozen=True)
class AdminRow:
    id: uuid.UUID
    email: str
    password_hash: str
    kube_user: str | None
    kube_groups: list[str]
    token_version: int

    def identity(self) -> Identity:
        """The Kubernetes identity the account acts as."""
        groups = tuple(dict.fromkeys([*self.kube_groups, AUTHENTICATED]))
        return Identity(user=self.kube_user or USER_PREFIX + self.email, groups=groups)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_kube_names(user: str | None, groups: list[str]) -> None:
    """Refuse blank names and the API server's own ``system:`` users and groups."""
    for name in [*([user] if user is not None else []), *groups]:
        if not name.strip() or name.strip() != name:
            raise ValueError(f"invalid Kubernetes user or group name {name!r}")
        if name.startswith(RESERVED_PREFIX):
            raise ValueError(f"{name!r}: names starting with {RESERVED_PREFIX!r} are reserved")


COLUMNS = "id, email, password_hash, kube_user, kube_groups, token_version"


async def by_email(pool: AsyncConnectionPool, email: str) -> AdminRow | None:
    rows = await _fetch(
        pool, f"SELECT {COLUMNS} FROM admin WHERE email = %s", (normalize_email(email),)
    )
    return AdminRow(*rows[0]) if rows else None


async def by_id(pool: AsyncConnectionPool, admin_id: uuid.UUID) -> AdminRow | None:
    """One primary-key read: what every request with a local token costs (revocation)."""
    rows = await _fetch(pool, f"SELECT {COLUMNS} FROM admin WHERE id = %s", (admin_id,))
    return AdminRow(*rows[0]) if rows else None


UPSERT = """
INSERT INTO admin (id, email, password_hash, kube_user, kube_groups) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (email) DO UPDATE SET
  password_hash = EXCLUDED.password_hash,
  kube_user = EXCLUDED.kube_user,
  kube_groups = EXCLUDED.kube_groups,
  token_version = admin.token_version
    + (admin.password_hash IS DISTINCT FROM EXCLUDED.password_hash)::int,
  updated_at = now()
"""


async def upsert(
    pool: AsyncConnectionPool,
    email: str,
    password_hash: str,
    kube_user: str | None = None,
    kube_groups: list[str] | None = None,
) -> None:
    """Create the account or replace its password and identity; a new password hash
    revokes the account's tokens."""
    groups = list(kube_groups or [])
    check_kube_names(kube_user, groups)
    await _fetch(
        pool, UPSERT, (uuid.uuid4(), normalize_email(email), password_hash, kube_user, groups)
    )


async def set_password(pool: AsyncConnectionPool, admin_id: uuid.UUID, password_hash: str) -> None:
    """A new password; every token the account holds stops working."""
    await _fetch(
        pool,
        "UPDATE admin SET password_hash = %s, token_version = token_version + 1, "
        "updated_at = now() WHERE id = %s",
        (password_hash, admin_id),
    )


async def remove(pool: AsyncConnectionPool, email: str) -> bool:
    """Delete the account (its tokens stop working); whether it existed."""
    rows = await _fetch(
        pool, "DELETE FROM admin WHERE email = %s RETURNING id", (normalize_email(email),)
    )
    return bool(rows)
