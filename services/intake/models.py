"""Intake's own tables: applications and their timeline, transfers, 12345 calls, channel
feedback (the callback outbox), zero reports and the registry of regions that must report."""
from __future__ import annotations

import sqlalchemy as sa

from shared.db import BigIntPK, UTCDateTime

metadata = sa.MetaData()

applications = sa.Table(
    "applications", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("channel_ref", sa.String(64), nullable=True),
    sa.Column("program", sa.String(16), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False, index=True),
    sa.Column("handling_region_code", sa.String(12), nullable=False, index=True),
    sa.Column("area", sa.String(8), nullable=False),
    # 0003: no identity number in the clear (personal_data.py): the applicant's, encrypted
    # (AES-GCM) and its keyed hash (HMAC) as the look-up index; the household encrypted whole.
    sa.Column("applicant_person_enc", sa.String(128), nullable=False),
    sa.Column("applicant_person_index", sa.String(64), nullable=False, index=True),
    # "<person index>:<program>" while the application is open, NULL once closed: the unique
    # index turns a second open application for the same person and program into the existing one.
    sa.Column("open_key", sa.String(100), nullable=True, unique=True),
    sa.Column("household_enc", sa.Text, nullable=False),
    sa.Column("hardship", sa.JSON, nullable=True),
    sa.Column("discovery", sa.JSON, nullable=True),
    sa.Column("documents", sa.JSON, nullable=False),
    sa.Column("missing_documents", sa.JSON, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("case_id", sa.String(36), nullable=True),
    sa.Column("owner_sub", sa.String(64), nullable=False),  # 首问负责: who owns it until a handoff
    sa.Column("submitted_by_sub", sa.String(64), nullable=False),
    sa.Column("submitted_by_role", sa.String(32), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("due_by", sa.Date, nullable=False),
    sa.Column("due_by_provisional", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("request_hash", sa.String(64), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # -- 0002: ownership, step clocks (限时办理), decision, closing ---------------------------
    sa.Column("owner_role", sa.String(32), nullable=True),
    sa.Column("accepted_at", UTCDateTime(), nullable=True),
    sa.Column("step_started_at", UTCDateTime(), nullable=True),
    # The current step's deadline (the earlier of the step limit and the acceptance-to-payment
    # limit); NULL when nothing is running (closed, transferred).
    sa.Column("clock_due_by", sa.Date, nullable=True, index=True),
    sa.Column("clock_provisional", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("clock_at_risk_on", sa.Date, nullable=True),
    # Last state the deadline scan announced: on_time | at_risk | overdue (events once per change).
    sa.Column("deadline_state", sa.String(16), nullable=False, server_default="on_time"),
    sa.Column("decision_id", sa.String(64), nullable=True),
    sa.Column("decision_outcome", sa.String(16), nullable=True),
    sa.Column("monthly_amount", sa.String(24), nullable=True),
    sa.Column("one_time_amount", sa.String(24), nullable=True),
    sa.Column("stages_expected", sa.Integer, nullable=True),
    sa.Column("paid_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
)

application_steps = sa.Table(
    "application_steps", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("application_id", sa.String(36), sa.ForeignKey("applications.id"), nullable=False, index=True),
    sa.Column("step", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
)

# 转办 (I2, L5): every hand-over to another department, by an officer or by a decision.
transfers = sa.Table(
    "transfers", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("application_id", sa.String(36), sa.ForeignKey("applications.id"), nullable=False, index=True),
    sa.Column("department", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # officer | decision
    sa.Column("closes_application", sa.Boolean, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# 12345 calls that are not (yet) applications: inquiries, complaints, requests to apply.
hotline_calls = sa.Table(
    "hotline_calls", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("work_order", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False, index=True),
    sa.Column("handler_region_code", sa.String(12), nullable=False, index=True),
    sa.Column("handler_department", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # open | answered
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("received_by", sa.String(100), nullable=False),
    sa.Column("due_by", sa.Date, nullable=False),
    sa.Column("due_by_provisional", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("answered_at", UTCDateTime(), nullable=True),
    sa.Column("answered_by", sa.String(100), nullable=True),
    sa.Column("answer_outcome", sa.String(32), nullable=True),
    sa.Column("answer_text", sa.Text, nullable=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
)

# 反馈 to the channel (I2): a callback outbox. The row commits with the state change that
# causes it; a background task delivers it with retries and backoff. Failures stay visible.
channel_feedback = sa.Table(
    "channel_feedback", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("application_id", sa.String(36), nullable=True, index=True),
    sa.Column("hotline_call_id", sa.String(36), nullable=True, index=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("work_order", sa.String(64), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | failed | sent
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
)
sa.Index("ix_channel_feedback_due", channel_feedback.c.state, channel_feedback.c.next_attempt_at)

# 零报告 (I4): one report per reporting region and month, even when nobody was found.
zero_reports = sa.Table(
    "zero_reports", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("region_code", sa.String(12), nullable=False),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("found_count", sa.Integer, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("filed_by", sa.String(100), nullable=False),
    sa.Column("filed_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("region_code", "period", name="uq_zero_reports_region_period"),
)
sa.Index("ix_zero_reports_period", zero_reports.c.period, zero_reports.c.region_code)

# Which villages/townships of a county must report (loaded per county as data).
reporting_regions = sa.Table(
    "reporting_regions", metadata,
    sa.Column("county_code", sa.String(12), primary_key=True),
    sa.Column("region_code", sa.String(12), primary_key=True),
    sa.Column("name", sa.String(100), nullable=True),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("loaded_by", sa.String(100), nullable=False),
    sa.Column("loaded_at", UTCDateTime(), nullable=False),
)
