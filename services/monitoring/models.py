"""Monitoring's own tables (the register, warnings and indicators grow from here)."""
from __future__ import annotations

import sqlalchemy as sa

from shared.db import UTCDateTime

metadata = sa.MetaData()

# I5: every new case with the door it came through, for the active-discovery share.
new_cases = sa.Table(
    "new_cases", metadata,
    sa.Column("case_id", sa.String(36), primary_key=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("program", sa.String(16), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False, index=True),
    sa.Column("opened_on", sa.Date, nullable=False, index=True),
    sa.Column("opened_at", UTCDateTime(), nullable=False),
)
