"""Campaign resources through the Kubernetes API (the API's only Kubernetes calls).

The ``kubernetes`` client is blocking: every method here is sync and the routes
call them with :func:`asyncio.to_thread`. Only create/get/list/patch/delete on
``campaigns`` and list on ``namespaces`` are used, which is all the API's
ServiceAccount is granted (cluster-wide: each user's own rights are checked first).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import string
import time
import uuid
from collections import OrderedDict
from threading import Lock
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from notifq.api.errors import (
    CampaignConflict,
    CampaignNotFound,
    CampaignRejected,
    KubernetesUnavailable,
)
from notifq.core import resource
from notifq.core.kubemeta import campaign_metadata
from notifq.core.resource import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)

TIMEOUT = 10.0
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_NAME_PREFIX_MAX = 40

Resource = dict[str, Any]
Resources = list[Resource]


def resource_name(display_name: str) -> str:
    """A DNS-1123 name from a display name plus a short random suffix."""
    slug = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-")[:_NAME_PREFIX_MAX]
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
    return f"{slug.strip('-') or 'campaign'}-{suffix}"


def manifest(
    name: str, namespace: str, display_name: str, spec: dict[str, Any], requested_by: str
) -> Resource:
    """The Campaign resource the API creates."""
    return resource.manifest(
        name,
        namespace,
        spec,
        labels={resource.CREATED_BY_LABEL: "notifq-api"},
        annotations={
            resource.DISPLAY_NAME_ANNOTATION: display_name,
            resource.REQUESTED_BY_ANNOTATION: requested_by,
        },
    )


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def _unavailable(exc: Exception) -> KubernetesUnavailable:
    if isinstance(exc, ApiException):
        return KubernetesUnavailable(f"Kubernetes API error {exc.status}: {_api_message(exc)}")
    return KubernetesUnavailable(f"Kubernetes API unreachable: {exc}")


INDEX_TTL = 1.0
"""Seconds a metadata-only listing of Campaigns (of one namespace, or of all of them for
lookups of ids nowhere else known) is reused, so a flood of requests costs at most one
listing per second each."""

Names = list[str]
Location = tuple[str, str]
"""A Campaign's namespace and name."""


class CampaignClient:
    """Campaign resources of every namespace (``namespace``: the default one, where the
    API creates and lists when asked for none), with a small uid -> location cache.

    It acts with the API's own ServiceAccount: the routes ask Kubernetes whether the
    *user* may do each thing (``authz``) before they call it."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str, cache_size: int = 10_000):
        self.api_client = api_client
        self.api = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self.namespace = namespace
        self._names: OrderedDict[uuid.UUID, Location] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()
        self._index: dict[str | None, tuple[float, Resources]] = {}
        self._index_lock = Lock()
        self._deleted: OrderedDict[uuid.UUID, None] = OrderedDict()

    @classmethod
    def from_environment(cls, namespace: str, kubeconfig: str | None = None) -> CampaignClient:
        """In-cluster credentials when running in a pod, else the kubeconfig."""
        cfg = k8s.Configuration()
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=cfg)
            return cls(k8s.ApiClient(cfg), namespace)
        return cls(k8s_config.new_client_from_config(config_file=kubeconfig), namespace)

    def close(self) -> None:
        self.api_client.close()

    # reads -----------------------------------------------------------------
    def list(self, namespace: str, limit: int | None = None) -> list[Resource]:
        """Campaigns of ``namespace``, newest first."""
        kwargs: dict[str, Any] = {"_request_timeout": TIMEOUT}
        if limit is not None:
            kwargs["limit"] = limit
        try:
            out = self.api.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, **kwargs
            )
        except (ApiException, HTTPError) as exc:
            raise _unavailable(exc) from exc
        items: list[Resource] = list(out.get("items", []))
        items.sort(
            key=lambda r: (r["metadata"].get("creationTimestamp", ""), r["metadata"]["name"]),
            reverse=True,
        )
        return items

    def index(self, namespace: str | None) -> Resources:
        """The Campaigns of ``namespace`` (None: of all namespaces) as metadata only
        (``{"metadata": ...}``), newest first; one paged metadata-only listing at most
        every :data:`INDEX_TTL` seconds each."""
        with self._index_lock:
            now = time.monotonic()
            cached = self._index.get(namespace)
            if cached is not None and now - cached[0] < INDEX_TTL:
                return cached[1]
            try:
                metas = list(campaign_metadata(self.api_client, namespace, timeout=TIMEOUT))
            except (ApiException, HTTPError) as exc:
                raise _unavailable(exc) from exc
            metas.sort(key=lambda m: (m.get("creationTimestamp", ""), m["name"]), reverse=True)
            items = [{"metadata": m} for m in metas]
            self._index[namespace] = (time.monotonic(), items)
            return items

    def _forget_index(self) -> None:
        """A create or delete by this process shows in the next listing at once."""
        with self._index_lock:
            self._index.clear()

    def namespaces(self) -> Names:
        """Every namespace's name, sorted (the dashboard's candidates)."""
        try:
            out = self.core.list_namespace(_request_timeout=TIMEOUT)
        except (ApiException, HTTPError) as exc:
            raise _unavailable(exc) from exc
        return sorted(str(ns.metadata.name) for ns in out.items)

    def get(self, namespace: str, name: str) -> Resource | None:
        try:
            out = self.api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _unavailable(exc) from exc
        except HTTPError as exc:
            raise _unavailable(exc) from exc
        return dict(out)

    def locate(self, uid: uuid.UUID) -> Location:
        """Where the campaign whose metadata.uid is ``uid`` lives, from the cache or the
        metadata index of every namespace (never a spec); :class:`CampaignNotFound` if
        nowhere. Reads no resource: the caller checks the user's rights there first, then
        :meth:`fetch`es it."""
        cached = self.known(uid)
        if cached is not None:
            return cached
        for item in self.index(None):
            meta = item["metadata"]
            if meta.get("uid") == str(uid):
                location = (str(meta["namespace"]), str(meta["name"]))
                self.remember(uid, location)
                return location
        raise CampaignNotFound(f"campaign {uid} not found")

    def known(self, uid: uuid.UUID) -> Location | None:
        """Where campaign ``uid`` lives, if this process has found it before (no call)."""
        with self._lock:
            return self._names.get(uid)

    def fetch(self, uid: uuid.UUID, location: Location) -> Resource:
        """The campaign ``uid`` at ``location`` (a re-created namesake is not it)."""
        res = self.get(*location)
        if res is not None and res["metadata"].get("uid") == str(uid):
            self.remember(uid, location)
            return res
        with self._lock:
            self._names.pop(uid, None)
        raise CampaignNotFound(f"campaign {uid} not found")

    def remember(self, uid: uuid.UUID, location: Location) -> None:
        """Keep where campaign ``uid`` lives (a uid's namespace and name never change; a
        deleted campaign's entry goes when a read finds it gone)."""
        with self._lock:
            self._names[uid] = location
            self._names.move_to_end(uid)
            while len(self._names) > self._cache_size:
                self._names.popitem(last=False)

    # writes ----------------------------------------------------------------
    def create(self, body: Resource) -> Resource:
        """Create ``body`` in its ``metadata.namespace``."""
        namespace = body["metadata"]["namespace"]
        try:
            out = self.api.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status in (400, 422):
                raise CampaignRejected(_api_message(exc)) from exc
            if exc.status == 409:
                raise CampaignConflict(_api_message(exc)) from exc
            if exc.status == 404:  # the namespace does not exist: the request's fault
                raise CampaignRejected(f"namespace {namespace!r} not found") from exc
            raise _unavailable(exc) from exc
        except HTTPError as exc:
            raise _unavailable(exc) from exc
        res = dict(out)
        self.remember(uuid.UUID(res["metadata"]["uid"]), (namespace, res["metadata"]["name"]))
        self._forget_index()
        return res

    def patch(self, res: Resource, patch: dict[str, Any]) -> Resource:
        """A JSON merge patch, guarded by the uid so a re-created namesake is never touched."""
        meta = res["metadata"]
        body = {**patch, "metadata": {**patch.get("metadata", {}), "uid": meta["uid"]}}
        try:
            out = self.api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                meta["namespace"],
                PLURAL,
                meta["name"],
                body,
                _content_type="application/merge-patch+json",
                _request_timeout=TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:
                raise CampaignNotFound(f"campaign {meta['uid']} not found") from exc
            if exc.status in (400, 409, 422):
                raise CampaignConflict(_api_message(exc)) from exc
            raise _unavailable(exc) from exc
        except HTTPError as exc:
            raise _unavailable(exc) from exc
        return dict(out)

    def delete(self, res: Resource) -> None:
        meta = res["metadata"]
        try:
            self.api.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                meta["namespace"],
                PLURAL,
                meta["name"],
                body=k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=meta["uid"])),
                _request_timeout=TIMEOUT,
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                raise CampaignNotFound(f"campaign {meta['uid']} not found") from exc
            raise _unavailable(exc) from exc
        except HTTPError as exc:
            raise _unavailable(exc) from exc
        uid = uuid.UUID(meta["uid"])
        with self._lock:
            self._names.pop(uid, None)
            self._deleted[uid] = None
            while len(self._deleted) > self._cache_size:
                self._deleted.popitem(last=False)
        self._forget_index()

    def deleted_here(self, uid: uuid.UUID) -> bool:
        """Whether this process deleted campaign ``uid`` (its row may not say so yet: the
        operator marks it deleted when it sees the deletion)."""
        with self._lock:
            return uid in self._deleted

    def ping(self) -> None:
        """A cheap call proving the API server answers and we may list campaigns."""
        self.list(self.namespace, limit=1)
