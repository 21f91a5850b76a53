"""Monitoring's own tables: the 7-category register and its history (M1), partner records and
comparison files (M2), warnings (M3–M6), potential cases (M5) and the facts indicators and
reports are computed from (I4, I5, P3, P4, T3).

Every ``person_id`` column holds the person *key* (shared/pii.py: the keyed hash of the
身份证号, 64 hex characters), never the number: joins and look-ups (the comparison's register
join included) compare keys. The numbers are in ``person_vault`` (AES-GCM), read only to show
a person to staff and to put the number on an event (migration 0005pii)."""
from __future__ import annotations

import sqlalchemy as sa

from shared.db import BigIntPK, UTCDateTime
from shared.pii import KEY_LENGTH, vault_table

metadata = sa.MetaData()
Money = sa.Numeric(14, 2)

# the encrypted numbers behind the person keys (shared/pii.py)
person_vault = vault_table(metadata)

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

# M1: who is in which category now (one row per person and category).
register = sa.Table(
    "register", metadata,
    sa.Column("person_id", sa.String(KEY_LENGTH), primary_key=True),
    sa.Column("category", sa.String(32), primary_key=True),
    sa.Column("region_code", sa.String(12), nullable=False),
    sa.Column("since", sa.Date, nullable=False),
    sa.Column("supply_mode", sa.String(16), nullable=True),  # T3, tekun only: dispersed | centralized
    sa.Column("source_type", sa.String(64), nullable=False),
    sa.Column("source_ref", sa.String(64), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
sa.Index("ix_register_region_category", register.c.region_code, register.c.category)

# M1: append-only history of every entry into and exit from a category, with the source event.
register_history = sa.Table(
    "register_history", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("person_id", sa.String(KEY_LENGTH), nullable=False, index=True),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False),
    sa.Column("action", sa.String(8), nullable=False),  # enter | leave
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_to", sa.Date, nullable=True),  # set on a leave row: the period that ended
    sa.Column("reason", sa.String(200), nullable=True),
    sa.Column("source_type", sa.String(64), nullable=False),
    sa.Column("source_ref", sa.String(64), nullable=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)

# M5: potential cases kept on file and watched.
potential_cases = sa.Table(
    "potential_cases", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("dedupe_key", sa.String(120), nullable=False, unique=True),
    sa.Column("person_id", sa.String(KEY_LENGTH), nullable=False, index=True),
    sa.Column("region_code", sa.String(12), nullable=False, index=True),
    sa.Column("case_id", sa.String(36), nullable=True),
    sa.Column("source", sa.String(32), nullable=False),  # denied_marginal | transferred
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("since", sa.Date, nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)

# M2: every partner record, whether POSTed, published on partner.events or in a comparison file.
partner_records = sa.Table(
    "partner_records", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("file_id", sa.String(36), nullable=True, index=True),
    sa.Column("row_no", sa.Integer, nullable=True),
    sa.Column("channel", sa.String(8), nullable=False),  # api | kafka | file
    sa.Column("partner_id", sa.String(64), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("person_id", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("occurred_on", sa.Date, nullable=False),
    sa.Column("amount", Money, nullable=True),
    sa.Column("grade", sa.SmallInteger, nullable=True),
    sa.Column("category", sa.String(32), nullable=True),
    sa.Column("region_code", sa.String(12), nullable=True),
    sa.Column("monthly_pci", Money, nullable=True),
    sa.Column("labor_capacity", sa.String(8), nullable=True),
    sa.Column("looks_eligible", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reference", sa.String(64), nullable=True),
    sa.Column("data", sa.JSON, nullable=True),
    sa.Column("received_at", UTCDateTime(), nullable=False),
)

# M2: replay protection of signed partner requests.
partner_nonces = sa.Table(
    "partner_nonces", metadata,
    sa.Column("partner_id", sa.String(64), primary_key=True),
    sa.Column("nonce", sa.String(128), primary_key=True),
    sa.Column("seen_at", UTCDateTime(), nullable=False, index=True),
)

comparison_files = sa.Table(
    "comparison_files", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("format", sa.String(8), nullable=False),
    sa.Column("filename", sa.String(200), nullable=True),
    sa.Column("partner_id", sa.String(64), nullable=False),
    sa.Column("uploaded_by", sa.String(100), nullable=False),
    sa.Column("uploaded_by_role", sa.String(32), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # processing | completed | failed
    sa.Column("rows_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_ok", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors_stored", sa.Integer, nullable=False, server_default="0"),
    sa.Column("warnings_raised", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deaths_detected", sa.Integer, nullable=False, server_default="0"),
    sa.Column("register_entries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("size_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
)

comparison_file_errors = sa.Table(
    "comparison_file_errors", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("file_id", sa.String(36), nullable=False, index=True),
    sa.Column("row_no", sa.Integer, nullable=False),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("message", sa.String(300), nullable=False),
)

# M3–M6: graded warnings, assigned to the person's township/village, with a deadline.
warnings = sa.Table(
    "warnings", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("dedupe_key", sa.String(120), nullable=False, unique=True),
    sa.Column("rule", sa.String(4), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("label", sa.String(32), nullable=False),
    sa.Column("level", sa.SmallInteger, nullable=False),
    sa.Column("person_id", sa.String(KEY_LENGTH), nullable=False, index=True),
    sa.Column("region_code", sa.String(12), nullable=False),
    sa.Column("covered", sa.Boolean, nullable=False),
    sa.Column("source_type", sa.String(64), nullable=False),
    sa.Column("source_record_id", sa.BigInteger, nullable=True),
    sa.Column("batch", sa.String(40), nullable=False),  # the run that raised it (found by id > max before)
    sa.Column("occurred_on", sa.Date, nullable=True),
    sa.Column("amount", Money, nullable=True),
    sa.Column("grade", sa.SmallInteger, nullable=True),
    sa.Column("raised_at", UTCDateTime(), nullable=False),
    sa.Column("raised_on", sa.Date, nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("due_provisional", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(8), nullable=False),  # open | closed
    sa.Column("escalated_at", UTCDateTime(), nullable=True),
    sa.Column("escalated_to", sa.String(12), nullable=True),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
    sa.Column("result", sa.String(32), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("verified_on", sa.Date, nullable=True),
    sa.Column("closed_by", sa.String(100), nullable=True),
    sa.Column("closed_by_name", sa.String(100), nullable=True),
    sa.Column("closed_by_role", sa.String(32), nullable=True),
)
sa.Index("ix_warnings_status_due", warnings.c.status, warnings.c.due_on)

# Append-only trail of what people and scans did to a warning (§7: attributed actions).
warning_actions = sa.Table(
    "warning_actions", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("warning_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),  # escalated | closed
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
)

# P3: payouts and whether they met the 5-working-day limit.
payouts = sa.Table(
    "payouts", metadata,
    sa.Column("disbursement_id", sa.String(36), primary_key=True),
    sa.Column("case_id", sa.String(36), nullable=False),
    sa.Column("program", sa.String(16), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False, index=True),
    sa.Column("handling_region_code", sa.String(12), nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("paid_on", sa.Date, nullable=False, index=True),
    sa.Column("within_time_limit", sa.Boolean, nullable=False),
)

# P4: 资金趴窝 and 以拨代支 alerts from payments.
reserve_alerts = sa.Table(
    "reserve_alerts", metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("township_code", sa.String(12), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("since", sa.Date, nullable=False),
    sa.Column("observed_on", sa.Date, nullable=False, index=True),
)

# I3/P3 clocks from intake and payments: at risk, overdue/breached.
sla_events = sa.Table(
    "sla_events", metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("source", sa.String(16), nullable=False),  # application | disbursement
    sa.Column("ref_id", sa.String(36), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("due_by", sa.Date, nullable=False),
    sa.Column("observed_on", sa.Date, nullable=False),
)

# I4: zero reports per region and month, and the units expected to report.
zero_reports = sa.Table(
    "zero_reports", metadata,
    sa.Column("region_code", sa.String(12), primary_key=True),
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("found_count", sa.Integer, nullable=False),
    sa.Column("filed_at", UTCDateTime(), nullable=False),
)

reporting_units = sa.Table(
    "reporting_units", metadata,
    sa.Column("region_code", sa.String(12), primary_key=True),
    sa.Column("source", sa.String(16), nullable=False),  # register | zero_report
    sa.Column("first_seen", sa.Date, nullable=False),
)

# M6 / P5: payments made after a death, flagged by payments for recovery.
recoveries = sa.Table(
    "recoveries", metadata,
    # payments' ids are up to 48 characters (payroll ids derive from kind, month and case)
    sa.Column("payment_id", sa.String(64), primary_key=True),
    sa.Column("person_id", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=True, index=True),
    sa.Column("amount", Money, nullable=False),
    sa.Column("paid_on", sa.Date, nullable=False),
    sa.Column("date_of_death", sa.Date, nullable=False),
    sa.Column("flagged_on", sa.Date, nullable=False),
)

# T3: visits or calls to dispersed 特困 persons (at least one a month).
tekun_visits = sa.Table(
    "tekun_visits", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("person_id", sa.String(KEY_LENGTH), nullable=False, index=True),
    sa.Column("region_code", sa.String(12), nullable=False),
    sa.Column("visited_on", sa.Date, nullable=False),
    sa.Column("method", sa.String(8), nullable=False),  # visit | phone
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("visited_by", sa.String(100), nullable=False),
    sa.Column("visited_by_name", sa.String(100), nullable=False),
    sa.Column("visited_by_role", sa.String(32), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)
sa.Index("ix_tekun_visits_region_day", tekun_visits.c.region_code, tekun_visits.c.visited_on)
