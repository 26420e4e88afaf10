"""Campaigns through the Kubernetes API with the user's kubeconfig (blocking calls)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from notifq.core.resource import (
    FAILURES,
    GROUP,
    PLURAL,
    REPORTS_GROUP,
    REPORTS_VERSION,
    VERSION,
)

Resource = dict[str, Any]
TIMEOUT = 30.0
AGGREGATOR_RETRIES = (1.0, 2.0)
"""Seconds before trying a reports call again that the API server itself refused with
503: the aggregated server was not reachable just then (its APIService is being checked
again). Every call of the reports API may be repeated: reads, and suppressing or
unsuppressing an address twice is doing it once."""


class PluginError(Exception):
    """A failure to show the user as one line (exit status 1)."""


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def from_aggregator(exc: ApiException) -> bool:
    """Whether a failure is the API server's own 503 for an aggregated API (plain text:
    the request never reached that server), not an answer of the server (a Status)."""
    if exc.status != 503:
        return False
    try:
        return bool(json.loads(exc.body or "").get("kind") != "Status")
    except (ValueError, AttributeError):
        return True


class Campaigns:
    """Get, list and patch Campaigns as the kubeconfig's user."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        try:
            self.api_client = k8s_config.new_client_from_config(
                config_file=kubeconfig, context=context
            )
            _, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
        except (k8s_config.ConfigException, OSError) as exc:
            raise PluginError(f"cannot load kubeconfig: {exc}") from exc
        if context:
            contexts, _ = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
            active = next((c for c in contexts if c["name"] == context), active)
        self.default_namespace = str(
            (active or {}).get("context", {}).get("namespace") or "default"
        )
        self.api = k8s.CustomObjectsApi(self.api_client)

    def close(self) -> None:
        self.api_client.close()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=TIMEOUT, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise PluginError(f"{what}: not found") from exc
            raise PluginError(f"{what}: {_message(exc)} ({exc.status})") from exc
        except OSError as exc:
            raise PluginError(f"{what}: Kubernetes API unreachable: {exc}") from exc

    def get(self, namespace: str, name: str) -> Resource:
        out = self._call(
            f"campaign {namespace}/{name}",
            self.api.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
        )
        return dict(out)

    def list(self, namespace: str | None) -> list[Resource]:
        """Campaigns of one namespace, or of all (``None``), by namespace and name."""
        if namespace is None:
            out = self._call(
                "campaigns", self.api.list_cluster_custom_object, GROUP, VERSION, PLURAL
            )
        else:
            out = self._call(
                f"campaigns in {namespace}",
                self.api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
            )
        items = [dict(i) for i in out.get("items", [])]
        items.sort(key=lambda r: (r["metadata"].get("namespace", ""), r["metadata"]["name"]))
        return items

    def _reports(self, path: str, method: str, **kwargs: Any) -> Any:
        """``call_api`` on the aggregated reports API as the kubeconfig's user; tried again
        after :data:`AGGREGATOR_RETRIES` while the API server answers for it with 503."""
        for wait in (*AGGREGATOR_RETRIES, None):
            try:
                return self.api_client.call_api(
                    path,
                    method,
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                    _request_timeout=TIMEOUT,
                    **kwargs,
                )
            except ApiException as exc:
                if wait is None or not from_aggregator(exc):
                    raise
            time.sleep(wait)
        raise AssertionError("unreachable")

    def failures(self, namespace: str, name: str, limit: int, cont: str) -> Resource | None:
        """One page of a campaign's failed recipients from the aggregated reports API, or
        None when this cluster does not serve it."""
        path = f"/apis/{REPORTS_GROUP}/{REPORTS_VERSION}/namespaces/{namespace}/{FAILURES}/{name}"
        query: list[tuple[str, Any]] = [("limit", limit)]
        if cont:
            query.append(("continue", cont))
        try:
            out = self._reports(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                response_types_map={200: "object"},
            )
        except ApiException as exc:
            if exc.status == 404 and "campaignfailures" not in (exc.body or ""):
                return None  # the group itself is unknown: reports are not installed
            what = f"failed recipients of {namespace}/{name}"
            if exc.status == 404:
                raise PluginError(f"{what}: not found") from exc
            raise PluginError(f"{what}: {_message(exc)} ({exc.status})") from exc
        except OSError as exc:
            raise PluginError(f"failed recipients: Kubernetes API unreachable: {exc}") from exc
        return dict(out)

    def suppressions(
        self,
        method: str,
        namespace: str,
        name: str = "",
        query: Sequence[tuple[str, Any]] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Resource:
        """A call on the namespace's suppression list in the aggregated reports API."""
        path = f"/apis/{REPORTS_GROUP}/{REPORTS_VERSION}/namespaces/{namespace}/suppressions"
        what = f"suppressions in {namespace}"
        try:
            out = self._reports(
                path + (f"/{name}" if name else ""),
                method,
                query_params=list(query or ()),
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=body,
                response_types_map={200: "object", 201: "object"},
            )
        except ApiException as exc:
            if exc.status == 404 and "suppressions" not in (exc.body or ""):
                raise PluginError(
                    f"{what}: this cluster does not serve the reports API (reports.notifq.dev)"
                ) from exc
            raise PluginError(f"{what}: {_message(exc)} ({exc.status})") from exc
        except OSError as exc:
            raise PluginError(f"{what}: Kubernetes API unreachable: {exc}") from exc
        return dict(out or {})

    def patch(self, res: Resource, patch: dict[str, Any]) -> Resource:
        """A merge patch guarded by the uid (a re-created namesake is never touched)."""
        meta = res["metadata"]
        body = {**patch, "metadata": {**patch.get("metadata", {}), "uid": meta["uid"]}}
        out = self._call(
            f"campaign {meta['namespace']}/{meta['name']}",
            self.api.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            meta["namespace"],
            PLURAL,
            meta["name"],
            body,
            _content_type="application/merge-patch+json",
        )
        return dict(out)
