"""Where a campaign's recipients come from: generated, an inline list, a ConfigMap, or an
object in S3-compatible storage.

A Campaign's author may not be able to read what the operator can: a ConfigMap is used
only when labelled ``notifq.dev/recipients: "true"`` (whoever may label ConfigMaps in the
namespace consents to its contents being mailed), and an object only under a bucket and
prefix the namespace's NotifqPolicy allows (``spec.s3``; none allowed without one).

A source hands out its recipients as batches, each committed on its own by
:mod:`notifq.operator.storing`, and can start again at any batch boundary (``start``: the
rows already committed; ``offset``: the bytes of an object already read), so an operator
killed while storing goes on where the last commit left off.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from notifq.core import recipients as rcpt
from notifq.core.errors import InvalidCampaign
from notifq.core.policy import Limits
from notifq.core.resource import RECIPIENTS_LABEL
from notifq.operator import objects, records
from notifq.operator.batches import GENERATE_BATCH, LIST_BATCH, Batch, Generated, Listed


class Batches(Protocol):
    """What storing needs of a source: its batches."""

    def batches(self, start: int, offset: int) -> AsyncIterator[Batch]:
        """The recipients from row ``start`` on (``offset`` bytes of an object read)."""
        ...


class Recipients(Batches, Protocol):
    """A resolved recipient source."""

    fields: frozenset[str]
    """The fields each recipient has for the templates (none for plain addresses)."""

    def lacking(self, used: frozenset[str]) -> str | None:
        """Why a recipient lacks a field of ``used`` (the first such), or None."""
        ...

    @property
    def sample(self) -> dict[str, str] | None:
        """Fields to render the validation sample with."""
        ...


class InlineRecipients:
    """A list held in memory (inline or from a ConfigMap: at most ~1.5 MiB), with each
    entry's fields when it has them (``table``)."""

    def __init__(
        self, entries: list[str], batch: int = LIST_BATCH, table: records.Table | None = None
    ) -> None:
        self.entries = entries
        self.batch = batch
        self.table = table
        self.fields = table.fields if table is not None else frozenset()
        self.where = "recipient"

    def lacking(self, used: frozenset[str]) -> str | None:
        if self.table is None or not used:
            return None
        return records.first_without(self.table, used, self.where)

    @property
    def sample(self) -> dict[str, str] | None:
        return self.table.data[0] if self.table is not None and self.table.data else None

    async def batches(self, start: int, offset: int) -> AsyncIterator[Batch]:
        data = self.table.data if self.table is not None else None
        for i in range(start, len(self.entries), self.batch):
            chunk = data[i : i + self.batch] if data is not None else None
            yield Listed(self.entries[i : i + self.batch], validate=True, data=chunk)


class GeneratedRecipients:
    """``include`` (validated) followed by ``count`` addresses generated inside Postgres."""

    fields: frozenset[str] = frozenset()
    sample = None

    def __init__(self, count: int, domain: str, include: list[str]) -> None:
        self.count = count
        self.domain = domain
        self.include = include

    def lacking(self, used: frozenset[str]) -> str | None:
        return None

    async def batches(self, start: int, offset: int) -> AsyncIterator[Batch]:
        shift = len(self.include)
        if start < shift:
            yield Listed(self.include[start:], validate=True)
            start = shift
        end = shift + self.count
        for first in range(start, end, GENERATE_BATCH):
            yield Generated(min(GENERATE_BATCH, end - first), self.domain, shift)


def known_size(src: Recipients) -> int | None:
    """Recipients of a source known before storing (None: counted while it is read)."""
    if isinstance(src, InlineRecipients):
        return len(src.entries)
    if isinstance(src, GeneratedRecipients):
        return src.count + len(src.include)
    return None


async def resolve(
    spec: Mapping[str, Any],
    namespace: str,
    core_api: k8s.CoreV1Api | None,
    *,
    max_generated: int,
    max_inline: int,
    store: objects.ObjectStore | None = None,
    batch: int = LIST_BATCH,
    limits: Limits | None = None,
) -> Recipients:
    """The recipients a spec names; :class:`InvalidCampaign` when they cannot be had (or
    may not be: an unlabelled ConfigMap, an object the namespace's policy does not allow)."""
    src = spec.get("recipients") or {}
    if "generate" in src:
        gen = src["generate"]
        count = int(gen["count"])
        if count > max_generated:
            raise InvalidCampaign(
                f"recipients.generate.count {count} exceeds the operator's limit of {max_generated}"
            )
        include = rcpt.normalize(gen.get("include") or [])
        return GeneratedRecipients(count, gen.get("domain", "example.com"), include)
    chosen = src.get("addressField")
    if "records" in src:
        table = records.parse_records(src["records"], chosen)
        if len(table.entries) > max_inline:
            raise InvalidCampaign(
                f"recipients.records has {len(table.entries)} entries; the limit is "
                f"{max_inline}, use configMapRef for larger lists"
            )
        if not table.entries:
            raise InvalidCampaign("recipients.records has no recipients")
        found = InlineRecipients(table.entries, batch, table)
        found.where = "spec.recipients.records"
        return found
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
        return InlineRecipients(entries, batch)
    if "configMapRef" in src:
        ref = src["configMapRef"]
        key = ref.get("key", "recipients")
        text = await _configmap_value(core_api, namespace, ref["name"], key)
        if ref.get("format") == "csv":
            where = f"ConfigMap {namespace}/{ref['name']} key {key!r}"
            # off the event loop: a 1 MiB list takes ~0.15 s to parse
            table = await asyncio.to_thread(records.parse_csv, text, chosen, where)
            if not table.entries:
                raise InvalidCampaign(f"{where} holds no recipients")
            found = InlineRecipients(table.entries, batch, table)
            found.where = f"{where}: recipient"
            return found
        lines = await asyncio.to_thread(lambda: rcpt.normalize(text.splitlines()))
        if not lines:
            raise InvalidCampaign(
                f"ConfigMap {ref['name']!r} key {ref.get('key', 'recipients')!r}"
                " holds no recipients"
            )
        return InlineRecipients(lines, batch)
    if "s3" in src:
        if store is None:
            raise InvalidCampaign("this operator has no object storage client")
        ref = src["s3"]
        if not (limits or Limits()).s3_allows(ref["bucket"], ref["key"]):
            raise InvalidCampaign(
                f"s3://{ref['bucket']}/{ref['key']} is not allowed for namespace {namespace}: "
                "a NotifqPolicy's spec.s3 must list its bucket (and a prefix of its key)"
            )
        fmt = ref.get("format", "lines")
        return await store.open(ref["bucket"], ref["key"], batch, fmt=fmt, address_field=chosen)
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
    labels = cm.metadata.labels or {}
    if labels.get(RECIPIENTS_LABEL) != "true":
        raise InvalidCampaign(
            f"ConfigMap {namespace}/{name} is not labelled {RECIPIENTS_LABEL}=true: label it "
            "to allow notifq to mail its recipients"
        )
    data = cm.data or {}
    if key not in data:
        raise InvalidCampaign(
            f"ConfigMap {namespace}/{name} has no key {key!r} "
            f"(keys: {', '.join(sorted(data)) or 'none'})"
        )
    return str(data[key])
