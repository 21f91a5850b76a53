"""Eligibility's own tables: cases opened from applications (decisions and policies follow)."""
from __future__ import annotations

import sqlalchemy as sa

from shared.db import UTCDateTime

metadata = sa.MetaData()

cases = sa.Table(
    "cases", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("application_id", sa.String(36), nullable=False, unique=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("program", sa.String(16), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False, index=True),
    sa.Column("handling_region_code", sa.String(12), nullable=False, index=True),
    sa.Column("area", sa.String(8), nullable=False),
    sa.Column("applicant_person_id", sa.String(18), nullable=False, index=True),
    sa.Column("household", sa.JSON, nullable=False),
    sa.Column("hardship", sa.JSON, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
