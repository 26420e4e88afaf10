"""A campaign's quota status, as the workers left it in Redis, for the resource status.

Workers write, on every quota decision, the provider's current rate, the
campaign's share of it and, when they had to wait, why (``provider``: the
provider's quota is the limit; ``share``: other campaigns use their shares;
``rateLimit``: the campaign's own limit; ``paused: ...``: e.g. SES's daily
quota used up). While the campaign is processing this becomes ``status.quota``,
a ``QuotaLimited`` condition and a note in ``status.message``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from notifq.core.queue import quota_status_key
from notifq.operator import status as st

log = logging.getLogger(__name__)

WAITING_WITHIN_MS = 3000
"""A campaign waits for quota when a worker had to give its job back this recently."""

REASONS = {
    "provider": "the provider's quota",
    "share": "its share of the provider's quota",
    "rateLimit": "its rateLimit",
}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read(redis: Redis, prefix: str, cid: uuid.UUID) -> dict[str, Any] | None:
    """``status.quota`` of a campaign, or None when no worker reported one recently."""
    raw = await redis.hgetall(quota_status_key(prefix, cid))
    if not raw:
        return None
    f = {_text(k): _text(v) for k, v in raw.items()}
    try:
        at = float(f["at"])
        waited = float(f.get("waitedAt", 0))
        quota: dict[str, Any] = {
            "provider": f["provider"],
            "providerRate": round(float(f["providerRate"]), 1),
            "share": round(float(f["share"]), 1),
            "waiting": at - waited < WAITING_WITHIN_MS,
        }
    except (KeyError, ValueError) as exc:
        log.debug("quota status of %s unreadable: %s", cid, exc)
        return None
    quota["reason"] = f.get("reason", "") if quota["waiting"] else ""
    return quota


def describe(quota: Mapping[str, Any]) -> str:
    reason = str(quota.get("reason", ""))
    why = reason if reason.startswith("paused") else REASONS.get(reason, reason)
    return (
        f"waiting for {why}: provider {quota['provider']} at {quota['providerRate']:g}/s, "
        f"this campaign's share {quota['share']:g}/s"
    )


async def annotate(
    redis: Redis,
    prefix: str,
    cid: uuid.UUID,
    old: Mapping[str, Any],
    new: dict[str, Any],
    generation: int,
) -> None:
    """Add ``quota``, the ``QuotaLimited`` condition and a note to a new status."""
    quota = None
    if new.get("phase") == "Processing":
        try:
            quota = await read(redis, prefix, cid)
        except Exception as exc:  # Redis trouble must not stop the status
            log.debug("quota status of %s not read: %s", cid, exc)
    if quota is None:
        if old.get("quota"):
            new["quota"] = None  # merge patch: remove
        return
    new["quota"] = quota
    waiting = bool(quota["waiting"])
    text = describe(quota) if waiting else "not waiting for quota"
    if waiting:
        new["message"] = f"{new.get('message', '')}; {text}"
    reason = "ProviderPaused" if str(quota["reason"]).startswith("paused") else "QuotaWaiting"
    new["conditions"] = [
        *new.get("conditions", []),
        st.condition(
            old.get("conditions"),
            "QuotaLimited",
            waiting,
            reason if waiting else "NotWaiting",
            text,
            generation,
        ),
    ]
