"""intake: applications, timeline, messaging tables

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

from shared.messaging.tables import create_messaging_tables, drop_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables(op)
    op.create_table(
        "applications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("channel_ref", sa.String(64), nullable=True),
        sa.Column("program", sa.String(16), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False, index=True),
        sa.Column("handling_region_code", sa.String(12), nullable=False, index=True),
        sa.Column("area", sa.String(8), nullable=False),
        sa.Column("applicant_person_id", sa.String(18), nullable=False),
        sa.Column("open_key", sa.String(40), nullable=True, unique=True),
        sa.Column("household", sa.JSON, nullable=False),
        sa.Column("hardship", sa.JSON, nullable=True),
        sa.Column("discovery", sa.JSON, nullable=True),
        sa.Column("documents", sa.JSON, nullable=False),
        sa.Column("missing_documents", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(36), nullable=True),
        sa.Column("owner_sub", sa.String(64), nullable=False),
        sa.Column("submitted_by_sub", sa.String(64), nullable=False),
        sa.Column("submitted_by_role", sa.String(32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_by", sa.Date, nullable=False),
        sa.Column("due_by_provisional", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "application_steps",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("application_id", sa.String(36), sa.ForeignKey("applications.id"), nullable=False, index=True),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("application_steps")
    op.drop_table("applications")
    drop_messaging_tables(op)
