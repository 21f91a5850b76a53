"""Payments' own tables (SQLAlchemy Core). Migrations: migrations/versions/.

Person columns (``person_id``, ``payee_person_id``) and the per-person ledger accounts
(``payable:<key>``, ``recovery_receivable:<key>``) hold the person *key* (shared/pii.py: the
keyed hash of the 身份证号, 64 hex characters), never the number; the number itself is in
``person_vault``, AES-GCM encrypted, for the few places that show or send it (migration
0005_pii). The column names stay: the key is this service's person identifier."""
from __future__ import annotations

import sqlalchemy as sa

from shared.db import BigIntPK, UTCDateTime
from shared.pii import KEY_LENGTH, vault_table

metadata = sa.MetaData()

# the encrypted numbers behind the person keys (shared/pii.py)
person_vault = vault_table(metadata)

PENDING_STATUSES = ("ready", "sending", "unknown")

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
    # 0002: the disbursement that pays the case, the last state reported, why a clock stopped
    sa.Column("disbursement_id", sa.String(36), nullable=True),
    sa.Column("deadline_state", sa.String(16), nullable=False, server_default="ok"),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
    sa.Column("closed_reason", sa.String(32), nullable=True),
)

# --- ledger (append-only: triggers refuse UPDATE and DELETE on entries and transactions) ---

ledger_accounts = sa.Table(
    "ledger_accounts", metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=True, index=True),
    sa.Column("balance_fen", sa.BigInteger, nullable=False, server_default="0"),  # debits − credits
    sa.Column("floor_zero", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint("NOT floor_zero OR balance_fen >= 0", name="ck_ledger_accounts_floor"),
)

ledger_transactions = sa.Table(
    "ledger_transactions", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=True, index=True),
    sa.Column("ref_type", sa.String(24), nullable=True),
    sa.Column("ref_id", sa.String(64), nullable=True, index=True),
    sa.Column("reverses_id", sa.BigInteger, nullable=True),
    sa.Column("memo", sa.Text, nullable=True),
    sa.Column("actor", sa.String(120), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

ledger_entries = sa.Table(
    "ledger_entries", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("transaction_id", sa.BigInteger, sa.ForeignKey("ledger_transactions.id"), nullable=False, index=True),
    sa.Column("account", sa.String(96), nullable=False, index=True),  # 0005: room for "<kind>:<person key>"
    sa.Column("side", sa.String(1), nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("payment_id", sa.String(48), nullable=True),
    sa.CheckConstraint("amount_fen > 0", name="ck_ledger_entries_positive"),
    sa.CheckConstraint("side IN ('D', 'C')", name="ck_ledger_entries_side"),
)
# reconciliation finds the paid bookings of a payment; the payroll's earmark lines stay out of it
sa.Index("ix_ledger_entries_clearing", ledger_entries.c.payment_id,
         sqlite_where=ledger_entries.c.account.like("bank_clearing:%"),
         postgresql_where=ledger_entries.c.account.like("bank_clearing:%"))

# --- sign-offs (P1, P2, L4): one row per role; one person once -------------------------------

signoffs = sa.Table(
    "signoffs", metadata,
    sa.Column("subject_type", sa.String(24), primary_key=True),  # disbursement | allocation
    sa.Column("subject_id", sa.String(36), primary_key=True),
    sa.Column("role", sa.String(32), primary_key=True),
    sa.Column("signer_sub", sa.String(64), nullable=False),
    sa.Column("signer_name", sa.String(100), nullable=False),
    sa.Column("signed_at", UTCDateTime(), nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.UniqueConstraint("subject_type", "subject_id", "signer_sub", name="uq_signoffs_one_person_once"),
)

# --- reserve funds (P1, P4) --------------------------------------------------------------------

reserve_allocations = sa.Table(
    "reserve_allocations", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("township_code", sa.String(12), nullable=False, index=True),
    sa.Column("county_code", sa.String(12), nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("reference", sa.String(100), nullable=False),  # 联合行文 document number
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending | approved
    sa.Column("requested_by", sa.String(120), nullable=False),
    sa.Column("requested_at", UTCDateTime(), nullable=False),
    sa.Column("approved_at", UTCDateTime(), nullable=True),
    sa.Column("ledger_tx_id", sa.BigInteger, nullable=True),
)

reimbursements = sa.Table(
    "reimbursements", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("township_code", sa.String(12), nullable=False, index=True),
    sa.Column("county_code", sa.String(12), nullable=False),
    sa.Column("period_from", sa.Date, nullable=False),
    sa.Column("period_to", sa.Date, nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("backed_fen", sa.BigInteger, nullable=False),  # payouts the ledger shows for the period
    sa.Column("status", sa.String(16), nullable=False),  # filed | approved | rejected
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("filed_by", sa.String(120), nullable=False),
    sa.Column("filed_at", UTCDateTime(), nullable=False),
    sa.Column("decided_by", sa.String(120), nullable=True),
    sa.Column("decided_at", UTCDateTime(), nullable=True),
    sa.Column("decision_note", sa.Text, nullable=True),
    sa.Column("ledger_tx_id", sa.BigInteger, nullable=True),
)

reserve_alerts = sa.Table(
    "reserve_alerts", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("township_code", sa.String(12), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("since", sa.Date, nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("observed_on", sa.Date, nullable=False),
    sa.UniqueConstraint("township_code", "kind", "since", "amount_fen", name="uq_reserve_alerts_once"),
)

# --- temporary assistance payouts (P2, P3, L4) ---------------------------------------------------

disbursements = sa.Table(
    "disbursements", metadata,
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
    sa.Column("person_id", sa.String(KEY_LENGTH), nullable=False, index=True),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("stages", sa.Integer, nullable=False),
    sa.Column("pay_first", sa.Boolean, nullable=False),
    sa.Column("documents_complete", sa.Boolean, nullable=False),
    sa.Column("documents_completed_at", UTCDateTime(), nullable=True),
    sa.Column("documents_completed_by", sa.String(120), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("pay_by", sa.Date, nullable=False),
    sa.Column("pay_by_provisional", sa.Boolean, nullable=False),
    sa.Column("decided_at", UTCDateTime(), nullable=False),
    sa.Column("signed_at", UTCDateTime(), nullable=True),
    sa.Column("first_paid_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# --- payments: one row per transfer to a bank account ------------------------------------------

payments = sa.Table(
    "payments", metadata,
    sa.Column("id", sa.String(48), primary_key=True),  # also the bank Idempotency-Key (attempt 1)
    sa.Column("kind", sa.String(16), nullable=False),  # benefit | price_subsidy | linshi
    sa.Column("program", sa.String(8), nullable=False),
    sa.Column("entitlement_id", sa.String(36), nullable=True),
    sa.Column("month", sa.Date, nullable=True),
    sa.Column("disbursement_id", sa.String(36), nullable=True),
    sa.Column("stage", sa.SmallInteger, nullable=True),
    sa.Column("run_id", sa.String(36), nullable=True),
    sa.Column("person_id", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False),
    sa.Column("source_account", sa.String(40), nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("send_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("release_on", sa.Date, nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("reject_reason", sa.String(32), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=True),
    sa.Column("paid_at", UTCDateTime(), nullable=True),
    # P5: one payment per beneficiary, month and kind, whatever runs race or repeat
    sa.UniqueConstraint("entitlement_id", "month", "kind", name="uq_payments_entitlement_month_kind"),
    sa.CheckConstraint("amount_fen > 0", name="ck_payments_positive"),
)
sa.Index("uq_payments_disbursement_stage", payments.c.disbursement_id, payments.c.stage, unique=True,
         sqlite_where=payments.c.disbursement_id.isnot(None), postgresql_where=payments.c.disbursement_id.isnot(None))
sa.Index("ix_payments_pending", payments.c.status, payments.c.created_at,
         sqlite_where=payments.c.status.in_(PENDING_STATUSES), postgresql_where=payments.c.status.in_(PENDING_STATUSES))
sa.Index("ix_payments_waiting", payments.c.source_account, payments.c.created_at,
         sqlite_where=payments.c.status.in_(("awaiting_funds", "scheduled")),
         postgresql_where=payments.c.status.in_(("awaiting_funds", "scheduled")))
# temporary-assistance payments by reserve and by person; payroll rows stay out of these
sa.Index("ix_payments_linshi_source", payments.c.source_account, payments.c.status,
         sqlite_where=payments.c.kind == "linshi", postgresql_where=payments.c.kind == "linshi")
sa.Index("ix_payments_linshi_person", payments.c.person_id,
         sqlite_where=payments.c.kind == "linshi", postgresql_where=payments.c.kind == "linshi")
sa.Index("ix_payments_retry", payments.c.person_id,
         sqlite_where=payments.c.status.in_(("rejected", "awaiting_account")),
         postgresql_where=payments.c.status.in_(("rejected", "awaiting_account")))
sa.Index("ix_payments_paid_at", payments.c.paid_at, sqlite_where=payments.c.paid_at.isnot(None),
         postgresql_where=payments.c.paid_at.isnot(None))

payment_attempts = sa.Table(
    "payment_attempts", metadata,
    sa.Column("payment_id", sa.String(48), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    # 0003: the account sent, as the payee's row had it: encrypted and masked (accounts.py)
    sa.Column("account_enc", sa.String(128), nullable=False),
    sa.Column("account_masked", sa.String(40), nullable=False),
    sa.Column("account_name", sa.String(100), nullable=True),
    sa.Column("bank_name", sa.String(100), nullable=True),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("requested_at", UTCDateTime(), nullable=False),
    sa.Column("sends", sa.Integer, nullable=False, server_default="0"),
    sa.Column("answered_at", UTCDateTime(), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=True),  # accepted | rejected
    sa.Column("reason", sa.String(32), nullable=True),
    sa.Column("bank_ref", sa.String(64), nullable=True),
    sa.Column("confirmed_fen", sa.BigInteger, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
)
sa.Index("ix_payment_attempts_answered", payment_attempts.c.answered_at)

payee_accounts = sa.Table(
    "payee_accounts", metadata,
    sa.Column("person_id", sa.String(KEY_LENGTH), primary_key=True),
    # 0003: never the plain number: AES-GCM bound to the person key, its keyed hash, its masked form
    sa.Column("account_enc", sa.String(128), nullable=False),
    sa.Column("account_index", sa.String(64), nullable=False, index=True),
    sa.Column("account_masked", sa.String(40), nullable=False),
    sa.Column("account_name", sa.String(100), nullable=True),
    sa.Column("bank_name", sa.String(100), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(120), nullable=False),
)

# --- monthly benefits (P5) -------------------------------------------------------------------------

entitlements = sa.Table(
    "entitlements", metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # the eligibility case id
    sa.Column("program", sa.String(8), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False, index=True),
    sa.Column("county_code", sa.String(12), nullable=False),
    sa.Column("payee_person_id", sa.String(KEY_LENGTH), nullable=False, index=True),
    sa.Column("covered_count", sa.Integer, nullable=False),
    sa.Column("monthly_fen", sa.BigInteger, nullable=False),  # the latest amount …
    sa.Column("amount_from", sa.Date, nullable=False),        # … and the month it starts
    sa.Column("first_month", sa.Date, nullable=False),
    sa.Column("last_month", sa.Date, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # active | suspended
    sa.Column("suspended_reason", sa.String(32), nullable=True),
    sa.Column("died_on", sa.Date, nullable=True),  # the death that suspended it (P5)
    sa.Column("decision_id", sa.String(64), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

entitlement_amounts = sa.Table(
    "entitlement_amounts", metadata,
    sa.Column("entitlement_id", sa.String(36), primary_key=True),
    sa.Column("effective_month", sa.Date, primary_key=True),
    sa.Column("monthly_fen", sa.BigInteger, nullable=False),
)

entitlement_persons = sa.Table(
    "entitlement_persons", metadata,
    sa.Column("entitlement_id", sa.String(36), primary_key=True),
    sa.Column("person_id", sa.String(KEY_LENGTH), primary_key=True, index=True),
)

deaths = sa.Table(
    "deaths", metadata,
    sa.Column("person_id", sa.String(KEY_LENGTH), primary_key=True),
    sa.Column("date_of_death", sa.Date, nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("reported_at", UTCDateTime(), nullable=False),
)

payment_recoveries = sa.Table(
    "payment_recoveries", metadata,
    sa.Column("payment_id", sa.String(48), primary_key=True),
    sa.Column("person_id", sa.String(KEY_LENGTH), nullable=False, index=True),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("paid_on", sa.Date, nullable=False),
    sa.Column("date_of_death", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open
    sa.Column("flagged_at", UTCDateTime(), nullable=False),
    sa.Column("ledger_tx_id", sa.BigInteger, nullable=True),
)

payroll_runs = sa.Table(
    "payroll_runs", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("region_code", sa.String(12), nullable=False, index=True),
    sa.Column("month", sa.Date, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # benefit | price_subsidy
    sa.Column("amount_per_person_fen", sa.BigInteger, nullable=True),
    sa.Column("payments_created", sa.Integer, nullable=False),
    sa.Column("total_fen", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(120), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("ledger_tx_id", sa.BigInteger, nullable=True),
)
