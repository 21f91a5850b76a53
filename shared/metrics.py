"""Prometheus metrics every service exports. Labels carry the service name because the
embedded run serves all four services from one process (one registry)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["service", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows not yet acknowledged by the bus", ["service"])
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox rows published", ["service"])
BUS_PUBLISH_FAILURES = Counter("bus_publish_failures_total", "Failed publish attempts (bus down)", ["service"])
CONSUMER_LAG = Gauge("consumer_lag", "Messages not yet consumed", ["service", "group", "topic"])
EVENTS_CONSUMED = Counter("events_consumed_total", "Events handled", ["service", "consumer", "type", "result"])
DEAD_LETTERS = Counter("dead_letters_total", "Events sent to the dead-letter topic", ["service", "consumer"])
DEADLINE_BREACHES = Counter("deadline_breaches_total", "Deadlines breached", ["service", "kind"])
