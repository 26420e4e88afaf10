"""Campaigns' metadata only, page by page (no spec, no status): cheap listing.

``PartialObjectMetadataList`` answers carry each object's ``metadata`` alone, so
listing many Campaigns never transfers their specs (inline lists of up to 10,000
recipients). Used by the operator's orphan sweep and by the API's list and id
lookups.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from kubernetes import client as k8s

from notifq.core.resource import GROUP, PLURAL, VERSION

METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
PAGE = 500


def campaign_metadata(
    api_client: k8s.ApiClient, namespace: str | None, *, timeout: float
) -> Iterator[dict[str, Any]]:
    """The ``metadata`` of every Campaign of ``namespace`` (None: of every namespace), in
    pages of :data:`PAGE` (the client's ApiException and urllib3 errors pass through)."""
    token: str | None = None
    where = f"namespaces/{namespace}/" if namespace is not None else ""
    path = f"/apis/{GROUP}/{VERSION}/{where}{PLURAL}"
    while True:
        query: list[tuple[str, Any]] = [("limit", PAGE)]
        if token:
            query.append(("continue", token))
        resp = api_client.call_api(
            path,
            "GET",
            query_params=query,
            header_params={"Accept": METADATA_ONLY},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=timeout,
        )
        page = json.loads(resp.data)
        for item in page.get("items") or []:
            yield item["metadata"]
        token = page.get("metadata", {}).get("continue")
        if not token:
            return
