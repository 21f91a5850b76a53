"""payments: double-entry ledger, sign-offs, reserve funds, disbursements, payments and bank
attempts, entitlements and payroll runs, deaths and recoveries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

from shared.messaging.tables import create_messaging_tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
PENDING = "status IN ('ready', 'sending', 'unknown')"
WAITING = "status IN ('awaiting_funds', 'scheduled')"
RETRY = "status IN ('rejected', 'awaiting_account')"
APPEND_ONLY = ("ledger_entries", "ledger_transactions")


def upgrade() -> None:
    # the kernel's tables (outbox, inbox, dead letters, audit trail) for a database whose 0001 ran
    # before the kernel added one of them; creates only what is missing
    create_messaging_tables(op)
    with op.batch_alter_table("payment_clocks") as b:
        b.add_column(sa.Column("disbursement_id", sa.String(36), nullable=True))
        b.add_column(sa.Column("deadline_state", sa.String(16), nullable=False, server_default="ok"))
        b.add_column(sa.Column("closed_at", TS, nullable=True))
        b.add_column(sa.Column("closed_reason", sa.String(32), nullable=True))

    op.create_table(
        "ledger_accounts",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=True, index=True),
        sa.Column("balance_fen", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("floor_zero", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("NOT floor_zero OR balance_fen >= 0", name="ck_ledger_accounts_floor"),
    )
    op.create_table(
        "ledger_transactions",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=True, index=True),
        sa.Column("ref_type", sa.String(24), nullable=True),
        sa.Column("ref_id", sa.String(64), nullable=True, index=True),
        sa.Column("reverses_id", sa.BigInteger, nullable=True),
        sa.Column("memo", sa.Text, nullable=True),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("transaction_id", sa.BigInteger, sa.ForeignKey("ledger_transactions.id"), nullable=False,
                  index=True),
        sa.Column("account", sa.String(64), nullable=False, index=True),
        sa.Column("side", sa.String(1), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("payment_id", sa.String(48), nullable=True),
        sa.CheckConstraint("amount_fen > 0", name="ck_ledger_entries_positive"),
        sa.CheckConstraint("side IN ('D', 'C')", name="ck_ledger_entries_side"),
    )
    op.create_index("ix_ledger_entries_clearing", "ledger_entries", ["payment_id"],
                    sqlite_where=sa.text("account LIKE 'bank_clearing:%'"),
                    postgresql_where=sa.text("account LIKE 'bank_clearing:%'"))
    op.create_table(
        "signoffs",
        sa.Column("subject_type", sa.String(24), primary_key=True),
        sa.Column("subject_id", sa.String(36), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
        sa.Column("signer_sub", sa.String(64), nullable=False),
        sa.Column("signer_name", sa.String(100), nullable=False),
        sa.Column("signed_at", TS, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.UniqueConstraint("subject_type", "subject_id", "signer_sub", name="uq_signoffs_one_person_once"),
    )
    op.create_table(
        "reserve_allocations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("township_code", sa.String(12), nullable=False, index=True),
        sa.Column("county_code", sa.String(12), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("reference", sa.String(100), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("approved_at", TS, nullable=True),
        sa.Column("ledger_tx_id", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "reimbursements",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("township_code", sa.String(12), nullable=False, index=True),
        sa.Column("county_code", sa.String(12), nullable=False),
        sa.Column("period_from", sa.Date, nullable=False),
        sa.Column("period_to", sa.Date, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("backed_fen", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("filed_by", sa.String(120), nullable=False),
        sa.Column("filed_at", TS, nullable=False),
        sa.Column("decided_by", sa.String(120), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("decision_note", sa.Text, nullable=True),
        sa.Column("ledger_tx_id", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "reserve_alerts",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("township_code", sa.String(12), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("since", sa.Date, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("observed_on", sa.Date, nullable=False),
        sa.UniqueConstraint("township_code", "kind", "since", "amount_fen", name="uq_reserve_alerts_once"),
    )
    op.create_table(
        "disbursements",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("decision_id", sa.String(64), nullable=False, unique=True),
        sa.Column("case_id", sa.String(36), nullable=False, index=True),
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("program", sa.String(8), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("handling_region_code", sa.String(12), nullable=False, index=True),
        sa.Column("approval_level", sa.String(8), nullable=False),
        sa.Column("funded_from", sa.String(20), nullable=False),
        sa.Column("source_account", sa.String(40), nullable=False),
        sa.Column("person_id", sa.String(18), nullable=False, index=True),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("stages", sa.Integer, nullable=False),
        sa.Column("pay_first", sa.Boolean, nullable=False),
        sa.Column("documents_complete", sa.Boolean, nullable=False),
        sa.Column("documents_completed_at", TS, nullable=True),
        sa.Column("documents_completed_by", sa.String(120), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("pay_by", sa.Date, nullable=False),
        sa.Column("pay_by_provisional", sa.Boolean, nullable=False),
        sa.Column("decided_at", TS, nullable=False),
        sa.Column("signed_at", TS, nullable=True),
        sa.Column("first_paid_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("program", sa.String(8), nullable=False),
        sa.Column("entitlement_id", sa.String(36), nullable=True),
        sa.Column("month", sa.Date, nullable=True),
        sa.Column("disbursement_id", sa.String(36), nullable=True),
        sa.Column("stage", sa.SmallInteger, nullable=True),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("person_id", sa.String(18), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("source_account", sa.String(40), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("send_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("release_on", sa.Date, nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("reject_reason", sa.String(32), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=True),
        sa.Column("paid_at", TS, nullable=True),
        sa.UniqueConstraint("entitlement_id", "month", "kind", name="uq_payments_entitlement_month_kind"),
        sa.CheckConstraint("amount_fen > 0", name="ck_payments_positive"),
    )
    op.create_index("uq_payments_disbursement_stage", "payments", ["disbursement_id", "stage"], unique=True,
                    sqlite_where=sa.text("disbursement_id IS NOT NULL"),
                    postgresql_where=sa.text("disbursement_id IS NOT NULL"))
    op.create_index("ix_payments_pending", "payments", ["status", "created_at"],
                    sqlite_where=sa.text(PENDING), postgresql_where=sa.text(PENDING))
    op.create_index("ix_payments_waiting", "payments", ["source_account", "created_at"],
                    sqlite_where=sa.text(WAITING), postgresql_where=sa.text(WAITING))
    op.create_index("ix_payments_linshi_source", "payments", ["source_account", "status"],
                    sqlite_where=sa.text("kind = 'linshi'"), postgresql_where=sa.text("kind = 'linshi'"))
    op.create_index("ix_payments_linshi_person", "payments", ["person_id"],
                    sqlite_where=sa.text("kind = 'linshi'"), postgresql_where=sa.text("kind = 'linshi'"))
    op.create_index("ix_payments_retry", "payments", ["person_id"],
                    sqlite_where=sa.text(RETRY), postgresql_where=sa.text(RETRY))
    op.create_index("ix_payments_paid_at", "payments", ["paid_at"],
                    sqlite_where=sa.text("paid_at IS NOT NULL"), postgresql_where=sa.text("paid_at IS NOT NULL"))
    op.create_table(
        "payment_attempts",
        sa.Column("payment_id", sa.String(48), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("account_number", sa.String(40), nullable=False),
        sa.Column("account_name", sa.String(100), nullable=True),
        sa.Column("bank_name", sa.String(100), nullable=True),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("sends", sa.Integer, nullable=False, server_default="0"),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("bank_ref", sa.String(64), nullable=True),
        sa.Column("confirmed_fen", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_payment_attempts_answered", "payment_attempts", ["answered_at"])
    op.create_table(
        "payee_accounts",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("account_number", sa.String(40), nullable=False),
        sa.Column("account_name", sa.String(100), nullable=True),
        sa.Column("bank_name", sa.String(100), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
    )
    op.create_table(
        "entitlements",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("program", sa.String(8), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False, index=True),
        sa.Column("county_code", sa.String(12), nullable=False),
        sa.Column("payee_person_id", sa.String(18), nullable=False, index=True),
        sa.Column("covered_count", sa.Integer, nullable=False),
        sa.Column("monthly_fen", sa.BigInteger, nullable=False),
        sa.Column("amount_from", sa.Date, nullable=False),
        sa.Column("first_month", sa.Date, nullable=False),
        sa.Column("last_month", sa.Date, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("suspended_reason", sa.String(32), nullable=True),
        sa.Column("died_on", sa.Date, nullable=True),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "entitlement_amounts",
        sa.Column("entitlement_id", sa.String(36), primary_key=True),
        sa.Column("effective_month", sa.Date, primary_key=True),
        sa.Column("monthly_fen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "entitlement_persons",
        sa.Column("entitlement_id", sa.String(36), primary_key=True),
        sa.Column("person_id", sa.String(18), primary_key=True, index=True),
    )
    op.create_table(
        "deaths",
        sa.Column("person_id", sa.String(18), primary_key=True),
        sa.Column("date_of_death", sa.Date, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("reported_at", TS, nullable=False),
    )
    op.create_table(
        "payment_recoveries",
        sa.Column("payment_id", sa.String(48), primary_key=True),
        sa.Column("person_id", sa.String(18), nullable=False, index=True),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("paid_on", sa.Date, nullable=False),
        sa.Column("date_of_death", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("flagged_at", TS, nullable=False),
        sa.Column("ledger_tx_id", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "payroll_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("region_code", sa.String(12), nullable=False, index=True),
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_per_person_fen", sa.BigInteger, nullable=True),
        sa.Column("payments_created", sa.Integer, nullable=False),
        sa.Column("total_fen", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("ledger_tx_id", sa.BigInteger, nullable=True),
    )
    _append_only_triggers()


def _append_only_triggers() -> None:
    """The ledger is append-only: a correction is a new transaction."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION payments_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
            END $$""")
        for table in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION payments_append_only()")
    else:
        for table in APPEND_ONLY:
            for what in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{what.lower()} BEFORE {what} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {what} refused'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS payments_append_only()")
    for table in ("payroll_runs", "payment_recoveries", "deaths", "entitlement_persons",
                  "entitlement_amounts", "entitlements", "payee_accounts", "payment_attempts", "payments",
                  "disbursements", "reserve_alerts", "reimbursements", "reserve_allocations", "signoffs",
                  "ledger_entries", "ledger_transactions", "ledger_accounts"):
        op.drop_table(table)
    with op.batch_alter_table("payment_clocks") as b:
        for col in ("closed_reason", "closed_at", "deadline_state", "disbursement_id"):
            b.drop_column(col)
