"""intake: audit entries carry their region (auditors read only their own region's entries)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
from alembic import op

from shared.audit import add_region_column, drop_region_column

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_region_column(op)


def downgrade() -> None:
    drop_region_column(op)
