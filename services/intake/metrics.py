"""Intake's own Prometheus metrics (the HTTP, outbox and consumer metrics come from shared/)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge

APPLICATIONS_BY_DEADLINE = Gauge(
    "intake_applications_deadline", "Open applications by the state of their current step's clock (限时办理, I3)",
    ["state"])
DEADLINE_EVENTS = Counter(
    "intake_deadline_events_total", "intake.application.deadline events emitted (once per state change)", ["state"])
CHANNEL_FEEDBACK = Gauge(
    "intake_channel_feedback", "Feedback to channels (反馈 to 12345, I2) not yet delivered, by state", ["state"])
CHANNEL_FEEDBACK_ATTEMPTS = Counter(
    "intake_channel_feedback_attempts_total", "Callback attempts to channel platforms", ["result"])
HOTLINE_CALLS_OPEN = Gauge("intake_hotline_calls_open", "12345 work orders not yet answered, by overdue", ["overdue"])
