"""Prometheus metrics of a worker process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "notifq_worker_messages_total", "Message outcomes", ["provider", "channel", "outcome"]
)
"""outcome: sent, failed (final), retry (transient failure, will be retried), throttled
(refused for the provider's rate or daily quota; no attempt spent), rerouted (found the
provider down as its breaker opened: sent through the secondary at once, no attempt spent)."""

FAILOVER = Counter(
    "notifq_provider_failover_total",
    "Messages handed to a secondary provider because their primary was down",
    ["channel", "from", "to"],
)
BREAKER_OPEN = Gauge(
    "notifq_provider_breaker_open",
    "1 while this process counts the provider down (breaker open or half-open), else 0",
    ["provider"],
)

SEND_SECONDS = Histogram(
    "notifq_worker_send_batch_seconds",
    "Latency of one provider batch call",
    ["provider"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUOTA_DELAYS = Counter(
    "notifq_worker_jobs_given_back_total",
    "Jobs given back to the queue until their quota frees (or the database answers)",
    ["reason"],
)
"""reason: provider, share, rateLimit, window, paused, throttled, exhausted, lease, database."""
LATE_SLOTS = Counter(
    "notifq_worker_quota_late_slots_total",
    "Booked quota slots missed by more than NOTIFQ_QUOTA_TOLERANCE_MS (booked again, not sent)",
    ["provider"],
)
WINDOW_WAITS = Counter(
    "notifq_worker_quota_window_waits_total",
    "Sends held back by the last check of the sliding 1-second windows (quota or rateLimit)",
    ["provider"],
)
IN_FLIGHT = Gauge("notifq_worker_in_flight_messages", "Messages handed to a provider, unanswered")
JOBS = Counter("notifq_worker_jobs_total", "Chunk jobs processed", ["outcome"])
QUEUE_DEPTH = Gauge("notifq_worker_queue_jobs", "Jobs in the queue by state", ["state"])
RENDER_FAILURES = Counter(
    "notifq_worker_render_failures_total", "Messages failed because their template did not render"
)
BAD_JOBS = Counter(
    "notifq_worker_bad_jobs_total", "Jobs failed for good because their payload was unreadable"
)
