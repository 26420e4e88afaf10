"""NotifqPolicy: the platform team's fair-use limits per namespace (pure, no I/O).

A NotifqPolicy is cluster-scoped, so a namespace's tenants (who may create Campaigns
and ConfigMaps in their namespace) cannot write one and cannot raise their own
limits; namespace annotations would be editable by anyone who may patch the
namespace. A policy selects namespaces by label (``spec.namespaceSelector``, a
Kubernetes label selector; empty or absent: every namespace). Several may select one
namespace: each field is taken from the selecting policy with the highest
``spec.priority`` that sets it (ties: the alphabetically first name), so a default
policy (empty selector, priority 0) holds for everyone and a team's policy (higher
priority) overrides some fields. No policy: no limits, and no object-storage list is
allowed (see :attr:`Limits.s3_allows`).

The operator enforces ``maxRecipients`` and ``maxActiveCampaigns`` and publishes
``providerSharePercent`` to Redis for the workers (``notifq.core.queue.share_key``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class S3Allow:
    """An object-storage location lists may come from: a bucket, optionally a key prefix."""

    bucket: str
    prefix: str = ""

    def covers(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and key.startswith(self.prefix)


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force for one namespace, each with the policy it comes from."""

    max_recipients: int | None = None
    max_active: int | None = None
    shares: Mapping[str, float] = field(default_factory=dict)
    """provider (or ``*``) -> fraction of that provider's quota the namespace may use."""
    s3: tuple[S3Allow, ...] = ()
    source: Mapping[str, str] = field(default_factory=dict)
    """field name -> the NotifqPolicy that set it (for messages)."""

    def s3_allows(self, bucket: str, key: str) -> bool:
        """Whether a list may be read from ``bucket``/``key`` (nothing allowed by default)."""
        return any(a.covers(bucket, key) for a in self.s3)

    def named(self, field_name: str) -> str:
        """``NotifqPolicy <name>`` of a field, for messages."""
        return f"NotifqPolicy {self.source.get(field_name, '?')}"


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) matches
    ``labels``; an empty or absent selector matches everything."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # unknown operator: the policy selects nothing rather than all
    return True


FIELDS = ("maxRecipients", "maxActiveCampaigns", "providerSharePercent", "s3")


def resolve(policies: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> Limits:
    """The limits for a namespace with ``labels`` under ``policies`` (NotifqPolicy bodies)."""
    chosen = sorted(
        (p for p in policies if selects((p.get("spec") or {}).get("namespaceSelector"), labels)),
        key=lambda p: (-int((p.get("spec") or {}).get("priority") or 0), _name(p)),
    )
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for p in chosen:
        spec = p.get("spec") or {}
        for f in FIELDS:
            if f not in values and spec.get(f) is not None:
                values[f] = spec[f]
                source[f] = _name(p)
    shares = {
        str(k): max(0.0, min(1.0, float(v) / 100))
        for k, v in (values.get("providerSharePercent") or {}).items()
    }
    s3 = tuple(
        S3Allow(str(a["bucket"]), str(a.get("prefix") or ""))
        for a in values.get("s3") or []
        if a.get("bucket")
    )
    return Limits(
        max_recipients=_int(values.get("maxRecipients")),
        max_active=_int(values.get("maxActiveCampaigns")),
        shares=shares,
        s3=s3,
        source=source,
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _name(policy: Mapping[str, Any]) -> str:
    return str((policy.get("metadata") or {}).get("name", ""))


def share_for(shares: Mapping[str, str | bytes | float], provider: str) -> float | None:
    """A namespace's share of ``provider`` from its share hash (``*``: any provider)."""
    value = shares.get(provider, shares.get("*"))
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    share = float(value)
    return share if share > 0 else None
