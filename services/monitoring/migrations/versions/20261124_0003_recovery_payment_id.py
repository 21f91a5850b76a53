"""monitoring: recoveries.payment_id holds payments' 48-character ids (found by the fault campaign)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recoveries") as batch_op:
        batch_op.alter_column("payment_id", existing_type=sa.String(36), type_=sa.String(64))


def downgrade() -> None:
    with op.batch_alter_table("recoveries") as batch_op:
        batch_op.alter_column("payment_id", existing_type=sa.String(64), type_=sa.String(36))
