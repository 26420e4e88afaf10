"""Where a campaign's recipients come from: generated, an inline list, or a ConfigMap."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from notifq.core import recipients as rcpt
from notifq.core.errors import InvalidCampaign


class Recipients:
    """A resolved recipient source: an iterable of addresses and whether to validate them."""

    def __init__(self, entries: Iterable[str], *, validate: bool) -> None:
        self.entries = entries
        self.validate = validate


async def resolve(
    spec: Mapping[str, Any],
    namespace: str,
    core_api: k8s.CoreV1Api | None,
    *,
    max_generated: int,
    max_inline: int,
) -> Recipients:
    """The recipients a spec names; :class:`InvalidCampaign` when they cannot be had."""
    src = spec.get("recipients") or {}
    if "generate" in src:
        gen = src["generate"]
        count = int(gen["count"])
        if count > max_generated:
            raise InvalidCampaign(
                f"recipients.generate.count {count} exceeds the operator's limit of {max_generated}"
            )
        synthetic = rcpt.generated(count, gen.get("domain", "example.com"))
        include = rcpt.normalize(gen.get("include") or [])
        if include:
            return Recipients(itertools.chain(include, synthetic), validate=True)
        # synthetic addresses are valid by construction: skip per-row validation
        return Recipients(synthetic, validate=False)
    if "list" in src:
        entries = rcpt.normalize(src["list"])
        if len(entries) > max_inline:
            raise InvalidCampaign(
                f"recipients.list has {len(entries)} entries; the limit is "
                f"{max_inline}, use configMapRef for larger lists"
            )
        if not entries:
            raise InvalidCampaign(
                "recipients.list has no recipients once blank entries are dropped"
            )
        return Recipients(entries, validate=True)
    if "configMapRef" in src:
        ref = src["configMapRef"]
        text = await _configmap_value(
            core_api, namespace, ref["name"], ref.get("key", "recipients")
        )
        lines = rcpt.normalize(text.splitlines())
        if not lines:
            raise InvalidCampaign(
                f"ConfigMap {ref['name']!r} key {ref.get('key', 'recipients')!r}"
                " holds no recipients"
            )
        return Recipients(lines, validate=True)
    raise InvalidCampaign("spec.recipients names no source")


async def _configmap_value(
    core_api: k8s.CoreV1Api | None, namespace: str, name: str, key: str
) -> str:
    if core_api is None:
        raise InvalidCampaign("this operator has no Kubernetes client for ConfigMaps")
    try:
        cm = await asyncio.to_thread(core_api.read_namespaced_config_map, name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise InvalidCampaign(f"ConfigMap {namespace}/{name} not found") from exc
        if exc.status == 403:
            raise InvalidCampaign(
                f"the operator may not read ConfigMap {namespace}/{name}"
            ) from exc
        raise
    data = cm.data or {}
    if key not in data:
        raise InvalidCampaign(
            f"ConfigMap {namespace}/{name} has no key {key!r} "
            f"(keys: {', '.join(sorted(data)) or 'none'})"
        )
    return str(data[key])
