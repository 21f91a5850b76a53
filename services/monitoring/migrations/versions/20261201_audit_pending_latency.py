"""monitoring: audit entries may wait in audit_pending for the sealer (contended appends, shared/audit.py)

Revision ID: audit_pending_latency
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op

from shared.audit import add_pending_table, drop_pending_table

revision = "audit_pending_latency"
down_revision = "20261201_compare"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_pending_table(op)


def downgrade() -> None:
    drop_pending_table(op)
