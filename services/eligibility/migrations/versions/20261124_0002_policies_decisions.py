"""eligibility: policy versions, means-test facts, decisions, benefits, re-evaluations

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

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    for col in (
        sa.Column("pending_sources", sa.JSON, nullable=True),
        sa.Column("verification", sa.JSON, nullable=True),
        sa.Column("next_check_at", TS, nullable=True),
        sa.Column("check_rounds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("proposal", sa.JSON, nullable=True),
        sa.Column("proposal_inputs", sa.JSON, nullable=True),
        sa.Column("proposal_as_of", sa.Date, nullable=True),
        sa.Column("proposal_policy_version", sa.String(40), nullable=True),
        sa.Column("proposal_policy_sources", sa.JSON, nullable=True),
        sa.Column("proposal_policy_seq", sa.BigInteger, nullable=True),
        sa.Column("proposal_stale", sa.Boolean, nullable=True),
        sa.Column("proposal_notes", sa.JSON, nullable=True),
        sa.Column("proposal_at", TS, nullable=True),
        sa.Column("decision_id", sa.String(36), nullable=True),
    ):
        op.add_column("cases", col)
    op.create_index("ix_cases_next_check_at", "cases", ["next_check_at"])
    # Cases opened before the means test existed start it now.
    op.execute("UPDATE cases SET status = 'verifying', next_check_at = opened_at WHERE status = 'open'")

    op.create_table(
        "case_facts",
        sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("assets_within_limits", sa.Boolean, nullable=True),
        sa.Column("monthly_incomes", sa.JSON, nullable=False),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("recorded_by_sub", sa.String(100), nullable=False),
        sa.Column("recorded_by_name", sa.String(100), nullable=False),
        sa.Column("recorded_by_role", sa.String(40), nullable=False),
    )
    op.create_index("ix_case_facts_case_id", "case_facts", ["case_id"])

    op.create_table(
        "policy_versions",
        sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("example", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("published_at", TS, nullable=False),
        sa.Column("published_by_sub", sa.String(100), nullable=False),
        sa.Column("published_by_name", sa.String(100), nullable=False),
        sa.Column("published_by_role", sa.String(40), nullable=False),
        sa.UniqueConstraint("region_code", "effective_from", name="uq_policy_versions_region_date"),
    )
    op.create_index("ix_policy_versions_region_code", "policy_versions", ["region_code"])

    op.create_table(
        "decisions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("reevaluation_id", sa.String(36), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("change", sa.String(16), nullable=True),
        sa.Column("monthly_fen", sa.BigInteger, nullable=True),
        sa.Column("one_time_fen", sa.BigInteger, nullable=True),
        sa.Column("old_monthly_fen", sa.BigInteger, nullable=True),
        sa.Column("approval_level", sa.String(8), nullable=True),
        sa.Column("exit_months", sa.Integer, nullable=True),
        sa.Column("exit_until", sa.Date, nullable=True),
        sa.Column("covered", sa.JSON, nullable=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("policy_version", sa.String(40), nullable=False),
        sa.Column("policy_sources", sa.JSON, nullable=True),
        sa.Column("policy_seq", sa.BigInteger, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("assessment", sa.JSON, nullable=False),
        sa.Column("overridden", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("transfer_department", sa.String(32), nullable=True),
        sa.Column("staged_payments", sa.JSON, nullable=True),
        sa.Column("pay_first", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("decided_at", TS, nullable=False),
        sa.Column("decided_by_sub", sa.String(100), nullable=False),
        sa.Column("decided_by_name", sa.String(100), nullable=False),
        sa.Column("decided_by_role", sa.String(40), nullable=False),
    )
    op.create_index("ix_decisions_case_id", "decisions", ["case_id"])

    op.create_table(
        "benefits",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("program", sa.String(8), nullable=False),
        sa.Column("area", sa.String(8), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("monthly_fen", sa.BigInteger, nullable=False),
        sa.Column("exit_until", sa.Date, nullable=True),
        sa.Column("covered", sa.JSON, nullable=False),
        sa.Column("applicant_person_id", sa.String(18), nullable=False),
        sa.Column("overridden", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("review_needed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("policy_version", sa.String(40), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_benefits_region_case", "benefits", ["region_code", "case_id"])
    op.create_table(
        "benefit_households",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("household", sa.JSON, nullable=False),
        sa.Column("household_ref", sa.String(36), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Room on every page for the new row version: re-evaluation updates stay HOT (no index writes).
        op.execute("ALTER TABLE benefits SET (fillfactor = 70)")

    op.create_table(
        "reevaluations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("policy_version_id", sa.String(40), nullable=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("policy_seq", sa.BigInteger, nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("total", sa.Integer, nullable=True),
        *[sa.Column(name, sa.Integer, nullable=False, server_default="0") for name in (
            "processed", "changed", "raised", "lowered", "gradual_exit", "stopped", "unchanged",
            "needs_review", "no_policy", "proposals_refreshed")],
        sa.Column("cursor_region", sa.String(12), nullable=True),
        sa.Column("cursor_case", sa.String(36), nullable=True),
        sa.Column("engine_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("db_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column("requested_by_sub", sa.String(100), nullable=False),
        sa.Column("requested_by_name", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_reevaluations_status", "reevaluations", ["status", "created_at"])


def downgrade() -> None:
    for table in ("reevaluations", "benefit_households", "benefits", "decisions", "policy_versions", "case_facts"):
        op.drop_table(table)
    op.drop_index("ix_cases_next_check_at", table_name="cases")
    with op.batch_alter_table("cases") as batch:
        for name in ("pending_sources", "verification", "next_check_at", "check_rounds", "proposal",
                     "proposal_inputs", "proposal_as_of", "proposal_policy_version", "proposal_policy_sources",
                     "proposal_policy_seq", "proposal_stale", "proposal_notes", "proposal_at", "decision_id"):
            batch.drop_column(name)
