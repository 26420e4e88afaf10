"""Prometheus metrics of the API process."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "notifq_api_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
LATENCY = Histogram(
    "notifq_api_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LOGINS = Counter("notifq_api_logins_total", "Login attempts by outcome", ["outcome"])
CAMPAIGNS_CREATED = Counter("notifq_api_campaigns_created_total", "Campaigns created")
