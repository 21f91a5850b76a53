"""intake: ownership, step clocks, decisions on applications; transfers, 12345 calls,
channel feedback, zero reports, reporting regions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("applications") as batch:
        batch.add_column(sa.Column("owner_role", sa.String(32), nullable=True))
        batch.add_column(sa.Column("accepted_at", _TS, nullable=True))
        batch.add_column(sa.Column("step_started_at", _TS, nullable=True))
        batch.add_column(sa.Column("clock_due_by", sa.Date, nullable=True))
        batch.add_column(sa.Column("clock_provisional", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("clock_at_risk_on", sa.Date, nullable=True))
        batch.add_column(sa.Column("deadline_state", sa.String(16), nullable=False, server_default="on_time"))
        batch.add_column(sa.Column("decision_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("decision_outcome", sa.String(16), nullable=True))
        batch.add_column(sa.Column("monthly_amount", sa.String(24), nullable=True))
        batch.add_column(sa.Column("one_time_amount", sa.String(24), nullable=True))
        batch.add_column(sa.Column("stages_expected", sa.Integer, nullable=True))
        batch.add_column(sa.Column("paid_count", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("closed_at", _TS, nullable=True))
    op.create_index("ix_applications_clock_due_by", "applications", ["clock_due_by"])

    op.create_table(
        "transfers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("application_id", sa.String(36), sa.ForeignKey("applications.id"), nullable=False, index=True),
        sa.Column("department", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("closes_application", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "hotline_calls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("work_order", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False, index=True),
        sa.Column("handler_region_code", sa.String(12), nullable=False, index=True),
        sa.Column("handler_department", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("received_by", sa.String(100), nullable=False),
        sa.Column("due_by", sa.Date, nullable=False),
        sa.Column("due_by_provisional", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("answered_at", _TS, nullable=True),
        sa.Column("answered_by", sa.String(100), nullable=True),
        sa.Column("answer_outcome", sa.String(32), nullable=True),
        sa.Column("answer_text", sa.Text, nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "channel_feedback",
        sa.Column("id", _BIGPK, primary_key=True, autoincrement=True),
        sa.Column("application_id", sa.String(36), nullable=True, index=True),
        sa.Column("hotline_call_id", sa.String(36), nullable=True, index=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("work_order", sa.String(64), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", _TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
    )
    op.create_index("ix_channel_feedback_due", "channel_feedback", ["state", "next_attempt_at"])
    op.create_table(
        "zero_reports",
        sa.Column("id", _BIGPK, primary_key=True, autoincrement=True),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("found_count", sa.Integer, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("filed_by", sa.String(100), nullable=False),
        sa.Column("filed_at", _TS, nullable=False),
        sa.UniqueConstraint("region_code", "period", name="uq_zero_reports_region_period"),
    )
    op.create_index("ix_zero_reports_period", "zero_reports", ["period", "region_code"])
    op.create_table(
        "reporting_regions",
        sa.Column("county_code", sa.String(12), primary_key=True),
        sa.Column("region_code", sa.String(12), primary_key=True),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("loaded_by", sa.String(100), nullable=False),
        sa.Column("loaded_at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reporting_regions")
    op.drop_index("ix_zero_reports_period", table_name="zero_reports")
    op.drop_table("zero_reports")
    op.drop_index("ix_channel_feedback_due", table_name="channel_feedback")
    op.drop_table("channel_feedback")
    op.drop_table("hotline_calls")
    op.drop_table("transfers")
    op.drop_index("ix_applications_clock_due_by", table_name="applications")
    with op.batch_alter_table("applications") as batch:
        for col in ("closed_at", "paid_count", "stages_expected", "one_time_amount", "monthly_amount",
                    "decision_outcome", "decision_id", "deadline_state", "clock_at_risk_on", "clock_provisional", "clock_due_by",
                    "step_started_at", "accepted_at", "owner_role"):
            batch.drop_column(col)
