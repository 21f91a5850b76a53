"""Payments' own tables (the ledger, reserve funds and disbursements follow)."""
from __future__ import annotations

import sqlalchemy as sa

from shared.db import UTCDateTime

metadata = sa.MetaData()

# P3: the clock from acceptance to money paid starts when intake accepts; payments keeps it
# per case so an at-risk or breached payout is visible before any decision arrives.
payment_clocks = sa.Table(
    "payment_clocks", metadata,
    sa.Column("case_id", sa.String(36), primary_key=True),
    sa.Column("application_id", sa.String(36), nullable=False),
    sa.Column("program", sa.String(16), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False),
    sa.Column("handling_region_code", sa.String(12), nullable=False, index=True),
    sa.Column("accepted_at", UTCDateTime(), nullable=False),
    sa.Column("pay_by", sa.Date, nullable=False),
    sa.Column("pay_by_provisional", sa.Boolean, nullable=False),
    sa.Column("paid_at", UTCDateTime(), nullable=True),
)
