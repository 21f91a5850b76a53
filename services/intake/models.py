"""Intake's own tables: applications, their timeline, and the 12345/e救助 channel records."""
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
    sa.Column("applicant_person_id", sa.String(18), nullable=False),
    # "<person>:<program>" while the application is open, NULL once closed: the unique index
    # turns a second open application for the same person and program into the existing one.
    sa.Column("open_key", sa.String(40), nullable=True, unique=True),
    sa.Column("household", sa.JSON, nullable=False),
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
