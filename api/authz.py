"""Who the caller is in Kubernetes, and whether Kubernetes lets them do something.

Both doors of the API ask the Kubernetes API server before they act: the REST API for
the identity its token names (a local account's Kubernetes user and groups, or an OIDC
ID token's), the aggregated reports API for the user the front proxy names. One
question is one ``SubjectAccessReview`` created with the API's own ServiceAccount
(which needs ``create subjectaccessreviews``); its RBAC decides, so the API never
grants more than a ``kubectl`` call by the same user would get.

Answers are kept ``cache_seconds`` (allowed and denied alike, as kube-apiserver's own
webhook authorizer does with its 5 min / 30 s caches), so a dashboard polling every
1.5 s costs the API server one review per user, verb and namespace per period; a
revoked RoleBinding takes effect within that time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from notifq.api.errors import KubernetesUnavailable
from notifq.api.ttlcache import TtlCache
from notifq.core import resource

AUTHENTICATED = "system:authenticated"
"""The group kube-apiserver gives every authenticated user; ours get it too, so bindings
to it (e.g. ``system:basic-user``) mean the same for a notifq user as for a kubectl one."""


@dataclass(frozen=True)
class Identity:
    """A Kubernetes user: name, groups and extra attributes."""

    user: str
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Access:
    """One question for the authorizer: may ``who`` ``verb`` this (namespaced) resource?
    An empty ``namespace`` asks about every namespace at once (cluster-wide rights)."""

    who: Identity
    verb: str
    namespace: str
    name: str = ""
    group: str = resource.GROUP
    resource: str = resource.PLURAL

    def key(self) -> tuple[object, ...]:
        extra = tuple(sorted((k, tuple(v)) for k, v in self.who.extra.items()))
        return (self.who.user, self.who.groups, extra, self.verb, self.namespace, self.name,
                self.group, self.resource)  # fmt: skip

    def describe(self) -> str:
        where = f'in the namespace "{self.namespace}"' if self.namespace else "cluster-wide"
        return (
            f'user "{self.who.user}" cannot {self.verb} resource "{self.resource}" '
            f'in API group "{self.group}" {where}'
        )


Authorizer = Callable[[Access], Awaitable[bool]]


def review_body(access: Access) -> k8s.V1SubjectAccessReview:
    """The SubjectAccessReview asking ``access``'s question."""
    who = access.who
    return k8s.V1SubjectAccessReview(
        spec=k8s.V1SubjectAccessReviewSpec(
            user=who.user,
            groups=list(who.groups),
            extra=who.extra or None,
            resource_attributes=k8s.V1ResourceAttributes(
                group=access.group,
                resource=access.resource,
                verb=access.verb,
                namespace=access.namespace or None,
                name=access.name or None,
            ),
        )
    )


def subject_access_reviewer(api_client: Any, cache_seconds: float = 0.0) -> Authorizer:
    """An authorizer asking the Kubernetes API (SubjectAccessReview) with the client's
    identity; :class:`KubernetesUnavailable` when it cannot answer."""
    api = k8s.AuthorizationV1Api(api_client)
    cache = TtlCache()

    def review(access: Access) -> bool:
        key = access.key()
        known: bool | None = cache.get(key)
        if known is not None:
            return known
        try:
            answer = api.create_subject_access_review(review_body(access), _request_timeout=10)
        except (ApiException, HTTPError) as exc:
            raise KubernetesUnavailable(f"SubjectAccessReview failed: {exc}") from exc
        allowed = bool(answer.status and answer.status.allowed)
        cache.put(key, allowed, cache_seconds)
        return allowed

    asking: dict[tuple[object, ...], asyncio.Future[bool]] = {}

    async def authorize(access: Access) -> bool:
        # a cached answer without a thread; one review per question at a time, however
        # many requests ask it when its answer expires (no burst of reviews, each a new
        # connection to the API server past the client's pool)
        key = access.key()
        known: bool | None = cache.get(key)
        if known is not None:
            return known
        pending = asking.get(key)
        if pending is None or pending.get_loop() is not asyncio.get_running_loop():
            pending = asyncio.ensure_future(asyncio.to_thread(review, access))
            asking[key] = pending

            def done(future: asyncio.Future[bool]) -> None:
                if asking.get(key) is future:
                    del asking[key]
                if not future.cancelled():
                    future.exception()  # retrieved, even when every asker went away

            pending.add_done_callback(done)
        return await asyncio.shield(pending)

    return authorize
