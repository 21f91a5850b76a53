"""Eligibility's own tables.

* ``cases`` — one per accepted application; the means test (经济状况核对) state, the proposed
  decision with its trace, and the final decision id.
* ``case_facts`` — every partner answer or manual entry, append-only (latest per source wins).
* ``policy_versions`` — published parameter sets per region and effective date; never updated
  (one version per region and date: a second publication for the same pair is a 409).
* ``decisions`` — every decision: officers' (confirm/override) and re-evaluations' (policy or
  fact change), each with its inputs, full calculation trace (the Assessment dict), the policy
  version(s), the as-of date and the policy publication sequence it saw (for replay).
* ``benefits`` — the current 低保/特困 benefit of each decided case (what re-evaluation
  recomputes); ``benefit_households`` — its household as assessed (compact JSON, see
  ``domain/inputs.py``).
* ``reevaluations`` — re-evaluation jobs and their progress (keyset cursor, counts).
The hash-chained audit trail (``audit_log``) is the kernel's (shared/audit.py).

Money columns are integer fen (exact on both SQLite and PostgreSQL).

Persons are stored by their *key* (shared/pii.py: the keyed hash of the 身份证号, 64 hex
characters), never by the number: ``applicant_person_id``, every ``person_id`` inside the
household JSON, the covered lists, the traces' breakdowns and the facts' income maps all hold
keys (the engine treats a person id as an opaque label, so it computes on keys unchanged). The
numbers are in ``person_vault`` (AES-GCM), decrypted only for responses, events and the
partners' means-test requests (migration 0004pii).
"""
from __future__ import annotations

import sqlalchemy as sa

from shared.db import BigIntPK, UTCDateTime
from shared.pii import KEY_LENGTH, vault_table

metadata = sa.MetaData()

# the encrypted numbers behind the person keys (shared/pii.py)
person_vault = vault_table(metadata)

cases = sa.Table(
    "cases", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("application_id", sa.String(36), nullable=False, unique=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("program", sa.String(16), nullable=False),
    sa.Column("region_code", sa.String(12), nullable=False, index=True),
    sa.Column("handling_region_code", sa.String(12), nullable=False, index=True),
    sa.Column("area", sa.String(8), nullable=False),
    sa.Column("applicant_person_id", sa.String(KEY_LENGTH), nullable=False, index=True),
    sa.Column("household", sa.JSON, nullable=False),
    sa.Column("hardship", sa.JSON, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # 0002: means test and proposal
    sa.Column("pending_sources", sa.JSON, nullable=True),
    sa.Column("verification", sa.JSON, nullable=True),
    sa.Column("next_check_at", UTCDateTime(), nullable=True, index=True),
    sa.Column("check_rounds", sa.Integer, nullable=False, server_default="0"),
    sa.Column("proposal", sa.JSON, nullable=True),
    sa.Column("proposal_inputs", sa.JSON, nullable=True),
    sa.Column("proposal_as_of", sa.Date, nullable=True),
    sa.Column("proposal_policy_version", sa.String(40), nullable=True),
    sa.Column("proposal_policy_sources", sa.JSON, nullable=True),
    sa.Column("proposal_policy_seq", sa.BigInteger, nullable=True),
    sa.Column("proposal_stale", sa.Boolean, nullable=True),
    sa.Column("proposal_notes", sa.JSON, nullable=True),
    sa.Column("proposal_at", UTCDateTime(), nullable=True),
    sa.Column("decision_id", sa.String(36), nullable=True),
)

case_facts = sa.Table(
    "case_facts", metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(36), nullable=False, index=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),  # partner | manual
    sa.Column("assets_within_limits", sa.Boolean, nullable=True),
    sa.Column("monthly_incomes", sa.JSON, nullable=False),
    sa.Column("summary", sa.Text, nullable=True),
    sa.Column("reference", sa.String(200), nullable=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("recorded_by_sub", sa.String(100), nullable=False),
    sa.Column("recorded_by_name", sa.String(100), nullable=False),
    sa.Column("recorded_by_role", sa.String(40), nullable=False),
)

policy_versions = sa.Table(
    "policy_versions", metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("region_code", sa.String(12), nullable=False, index=True),
    sa.Column("effective_from", sa.Date, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("example", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("published_at", UTCDateTime(), nullable=False),
    sa.Column("published_by_sub", sa.String(100), nullable=False),
    sa.Column("published_by_name", sa.String(100), nullable=False),
    sa.Column("published_by_role", sa.String(40), nullable=False),
    sa.UniqueConstraint("region_code", "effective_from", name="uq_policy_versions_region_date"),
)

decisions = sa.Table(
    "decisions", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),      # decision | reevaluation
    sa.Column("case_id", sa.String(36), nullable=False, index=True),
    sa.Column("reevaluation_id", sa.String(36), nullable=True),
    sa.Column("action", sa.String(16), nullable=False),    # confirm | override | policy | fact
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("change", sa.String(16), nullable=True),     # raise | lower | gradual_exit | stop (re-evaluation)
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
    sa.Column("decided_at", UTCDateTime(), nullable=False),
    sa.Column("decided_by_sub", sa.String(100), nullable=False),
    sa.Column("decided_by_name", sa.String(100), nullable=False),
    sa.Column("decided_by_role", sa.String(40), nullable=False),
)

benefits = sa.Table(
    "benefits", metadata,
    sa.Column("case_id", sa.String(36), primary_key=True),
    sa.Column("region_code", sa.String(12), nullable=False),
    sa.Column("program", sa.String(8), nullable=False),
    sa.Column("area", sa.String(8), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),    # active | exiting | stopped
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("monthly_fen", sa.BigInteger, nullable=False),
    sa.Column("exit_until", sa.Date, nullable=True),
    sa.Column("covered", sa.JSON, nullable=False),
    sa.Column("applicant_person_id", sa.String(KEY_LENGTH), nullable=False),
    sa.Column("overridden", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("review_needed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("decision_id", sa.String(36), nullable=False),
    sa.Column("policy_version", sa.String(40), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
sa.Index("ix_benefits_region_case", benefits.c.region_code, benefits.c.case_id)

# The household as assessed, apart from the benefit's state: a re-evaluation rewrites only the
# narrow ``benefits`` row (in place on PostgreSQL: fillfactor leaves room for HOT updates);
# households change only when facts change.
benefit_households = sa.Table(
    "benefit_households", metadata,
    sa.Column("case_id", sa.String(36), primary_key=True),
    sa.Column("household", sa.JSON, nullable=False),
    sa.Column("household_ref", sa.String(36), nullable=False),  # the decision whose inputs hold this household
    # 0004pii: the numbers of the household's people ({person key: number}, the applicant's
    # included) as one AES-GCM ciphertext bound to the case (shared/pii.py, household_numbers):
    # a re-evaluation of a million benefits reads it with the household and decrypts it only
    # for the changed ones' events, instead of a vault look-up per person
    sa.Column("numbers_enc", sa.Text, nullable=False),
)

reevaluations = sa.Table(
    "reevaluations", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("region_code", sa.String(12), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),   # policy | fact
    sa.Column("policy_version_id", sa.String(40), nullable=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("policy_seq", sa.BigInteger, nullable=True),
    sa.Column("status", sa.String(12), nullable=False),    # pending | running | done | failed
    sa.Column("total", sa.Integer, nullable=True),
    sa.Column("processed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("changed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("raised", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lowered", sa.Integer, nullable=False, server_default="0"),
    sa.Column("gradual_exit", sa.Integer, nullable=False, server_default="0"),
    sa.Column("stopped", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("needs_review", sa.Integer, nullable=False, server_default="0"),
    sa.Column("no_policy", sa.Integer, nullable=False, server_default="0"),
    sa.Column("proposals_refreshed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cursor_region", sa.String(12), nullable=True),
    sa.Column("cursor_case", sa.String(36), nullable=True),
    sa.Column("engine_ms", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("db_ms", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("correlation_id", sa.String(64), nullable=True),
    sa.Column("requested_by_sub", sa.String(100), nullable=False),
    sa.Column("requested_by_name", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)
sa.Index("ix_reevaluations_status", reevaluations.c.status, reevaluations.c.created_at)
