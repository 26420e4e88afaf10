"""The operator's calls to the Campaign API: patch status, read one, list what exists.

The ``kubernetes`` client is blocking; every method here is called through
:func:`asyncio.to_thread`, never on the event loop.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from notifq.core.kubemeta import campaign_metadata
from notifq.core.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)


TIMEOUT = 30.0
"""Seconds before a call to the API server is given up (and retried by its caller)."""


class CampaignApi:
    """Blocking calls on Campaign resources (run them in a thread)."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.api_client = api_client
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)

    def post_event(
        self, namespace: str, name: str, uid: str, type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event on the Campaign (what ``kubectl describe campaign`` lists)."""
        now = datetime.now(UTC)
        body = {
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": name,
                "namespace": namespace,
                "uid": uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "notifq-operator"},
            "reportingComponent": "notifq.dev/operator",
            "reportingInstance": "notifq-operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.core.create_namespaced_event(namespace, body, _request_timeout=TIMEOUT)

    def _on_campaign(
        self, method: Any, namespace: str, name: str, body: Any, gone: tuple[int, ...] = (404,)
    ) -> bool:
        """Call ``method`` on one Campaign; False when it is gone (HTTP ``gone`` codes)."""
        try:
            method(GROUP, VERSION, namespace, PLURAL, name, body=body, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status in gone:
                return False
            raise
        return True

    def delete(self, namespace: str, name: str, uid: str) -> bool:
        """Delete the Campaign if it is still the one with ``uid``; False when gone."""
        return self._on_campaign(
            self.custom.delete_namespaced_custom_object,
            namespace,
            name,
            {"preconditions": {"uid": uid}},
            gone=(404, 409),
        )

    def drop_annotation(self, namespace: str, name: str, key: str) -> bool:
        """Remove one annotation of the Campaign; False when it is gone."""
        return self._on_campaign(
            self.custom.patch_namespaced_custom_object,
            namespace,
            name,
            {"metadata": {"annotations": {key: None}}},
        )

    def suspend(self, namespace: str, name: str) -> bool:
        """Set ``spec.suspend: true`` (the reputation guard); False when it is gone."""
        return self._on_campaign(
            self.custom.patch_namespaced_custom_object,
            namespace,
            name,
            {"spec": {"suspend": True}},
        )

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """Merge-patch the status subresource; False when the Campaign is gone."""
        return self._on_campaign(
            self.custom.patch_namespaced_custom_object_status, namespace, name, {"status": status}
        )

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Campaign as stored now (a quorum read), or None when it is gone."""
        try:
            obj = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(obj)

    def existing_uids(self, namespace: str) -> set[uuid.UUID] | None:
        """Uids of the Campaigns in a namespace (metadata only, paged); None if not allowed."""
        try:
            return {
                uuid.UUID(meta["uid"])
                for meta in campaign_metadata(self.api_client, namespace, timeout=TIMEOUT)
            }
        except ApiException as exc:
            if exc.status in (403, 404):
                log.info("cannot list Campaigns in %s (%s); not sweeping it", namespace, exc)
                return None
            raise
