"""Prometheus metrics of the operator."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "notifq_operator_reconciles_total", "Campaign reconciliations by outcome", ["outcome"]
)
MATERIALIZE_SECONDS = Histogram(
    "notifq_operator_materialize_seconds",
    "Time to store and enqueue a campaign",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
REQUEUED_CHUNKS = Counter(
    "notifq_operator_requeued_chunks_total", "Chunks re-enqueued because their job was gone"
)
GIVEN_UP_CHUNKS = Counter(
    "notifq_operator_given_up_chunks_total",
    "Chunks whose jobs failed too often; their pending messages were failed",
)
CAMPAIGN_MESSAGES = Gauge(
    "notifq_operator_campaign_messages",
    "Messages per campaign and status",
    ["namespace", "campaign", "status"],
)

ADMISSIONS = Counter(
    "notifq_operator_admissions_total",
    "Slot checks under a NotifqPolicy's maxActiveCampaigns, by outcome (admitted, queued)",
    ["outcome"],
)
QUEUED = Gauge("notifq_operator_queued_campaigns", "Campaigns waiting for a slot (phase Queued)")

LEADER = Gauge(
    "notifq_operator_leader", "1 while this replica holds the operator Lease and runs Kopf"
)
BACKLOG = Gauge("notifq_operator_backlog_messages", "Pending messages of active campaigns")
DESIRED_REPLICAS = Gauge(
    "notifq_operator_worker_replicas_desired",
    "Replicas the autoscaler chose",
    ["namespace", "deployment"],
)
SCALINGS = Counter(
    "notifq_operator_scalings_total",
    "Replica changes made by the autoscaler",
    ["namespace", "deployment", "direction"],
)


def forget(namespace: str, name: str) -> None:
    """Drop a deleted campaign's series."""
    for status in ("pending", "sent", "failed", "cancelled", "suppressed"):
        with contextlib.suppress(KeyError):
            CAMPAIGN_MESSAGES.remove(namespace, name, status)
