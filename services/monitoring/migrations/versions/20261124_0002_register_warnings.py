"""monitoring: the 7-category register and its history (M1), partner records, nonces and
comparison files (M2), warnings and their trail (M3–M6), potential cases (M5), and the facts
indicators and reports use (I4, P3, P4, T3, M6 recoveries)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

from shared.messaging.tables import create_messaging_tables

# BIGINT on PostgreSQL; INTEGER on SQLite, where only an INTEGER PRIMARY KEY autoincrements.
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the kernel's tables (outbox, inbox, dead letters, audit trail) for a database whose 0001 ran
    # before the kernel added one of them; creates only what is missing
    create_messaging_tables(op)
    op.create_table('comparison_file_errors',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('file_id', sa.String(length=36), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=64), nullable=False),
    sa.Column('message', sa.String(length=300), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('comparison_file_errors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comparison_file_errors_file_id'), ['file_id'], unique=False)

    op.create_table('comparison_files',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=True),
    sa.Column('partner_id', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by', sa.String(length=100), nullable=False),
    sa.Column('uploaded_by_role', sa.String(length=32), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rows_total', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rows_ok', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rows_failed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('errors_stored', sa.Integer(), server_default='0', nullable=False),
    sa.Column('warnings_raised', sa.Integer(), server_default='0', nullable=False),
    sa.Column('deaths_detected', sa.Integer(), server_default='0', nullable=False),
    sa.Column('register_entries', sa.Integer(), server_default='0', nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('partner_nonces',
    sa.Column('partner_id', sa.String(length=64), nullable=False),
    sa.Column('nonce', sa.String(length=128), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('partner_id', 'nonce')
    )
    with op.batch_alter_table('partner_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_partner_nonces_seen_at'), ['seen_at'], unique=False)

    op.create_table('partner_records',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('file_id', sa.String(length=36), nullable=True),
    sa.Column('row_no', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('partner_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=18), nullable=False),
    sa.Column('occurred_on', sa.Date(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('grade', sa.SmallInteger(), nullable=True),
    sa.Column('category', sa.String(length=32), nullable=True),
    sa.Column('region_code', sa.String(length=12), nullable=True),
    sa.Column('monthly_pci', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('labor_capacity', sa.String(length=8), nullable=True),
    sa.Column('looks_eligible', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=True),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('partner_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_partner_records_file_id'), ['file_id'], unique=False)

    op.create_table('payouts',
    sa.Column('disbursement_id', sa.String(length=36), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('program', sa.String(length=16), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('handling_region_code', sa.String(length=12), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('paid_on', sa.Date(), nullable=False),
    sa.Column('within_time_limit', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('disbursement_id')
    )
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payouts_paid_on'), ['paid_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_payouts_region_code'), ['region_code'], unique=False)

    op.create_table('potential_cases',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('dedupe_key', sa.String(length=120), nullable=False),
    sa.Column('person_id', sa.String(length=18), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('potential_cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_potential_cases_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_potential_cases_region_code'), ['region_code'], unique=False)

    op.create_table('recoveries',
    sa.Column('payment_id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=18), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=True),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('paid_on', sa.Date(), nullable=False),
    sa.Column('date_of_death', sa.Date(), nullable=False),
    sa.Column('flagged_on', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('payment_id')
    )
    with op.batch_alter_table('recoveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recoveries_region_code'), ['region_code'], unique=False)

    op.create_table('register',
    sa.Column('person_id', sa.String(length=18), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.Column('supply_mode', sa.String(length=16), nullable=True),
    sa.Column('source_type', sa.String(length=64), nullable=False),
    sa.Column('source_ref', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('person_id', 'category')
    )
    with op.batch_alter_table('register', schema=None) as batch_op:
        batch_op.create_index('ix_register_region_category', ['region_code', 'category'], unique=False)

    op.create_table('register_history',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=18), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('source_type', sa.String(length=64), nullable=False),
    sa.Column('source_ref', sa.String(length=64), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('register_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_register_history_person_id'), ['person_id'], unique=False)

    op.create_table('reporting_units',
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('first_seen', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('region_code')
    )
    op.create_table('reserve_alerts',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('township_code', sa.String(length=12), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.Column('observed_on', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    with op.batch_alter_table('reserve_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reserve_alerts_observed_on'), ['observed_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_reserve_alerts_township_code'), ['township_code'], unique=False)

    op.create_table('sla_events',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('ref_id', sa.String(length=36), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('due_by', sa.Date(), nullable=False),
    sa.Column('observed_on', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    with op.batch_alter_table('sla_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sla_events_region_code'), ['region_code'], unique=False)

    op.create_table('tekun_visits',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=18), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('visited_on', sa.Date(), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('visited_by', sa.String(length=100), nullable=False),
    sa.Column('visited_by_name', sa.String(length=100), nullable=False),
    sa.Column('visited_by_role', sa.String(length=32), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tekun_visits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tekun_visits_person_id'), ['person_id'], unique=False)
        batch_op.create_index('ix_tekun_visits_region_day', ['region_code', 'visited_on'], unique=False)

    op.create_table('warning_actions',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('warning_id', sa.BigInteger(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('warning_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_warning_actions_warning_id'), ['warning_id'], unique=False)

    op.create_table('warnings',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('dedupe_key', sa.String(length=120), nullable=False),
    sa.Column('rule', sa.String(length=4), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=32), nullable=False),
    sa.Column('level', sa.SmallInteger(), nullable=False),
    sa.Column('person_id', sa.String(length=18), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('covered', sa.Boolean(), nullable=False),
    sa.Column('source_type', sa.String(length=64), nullable=False),
    sa.Column('source_record_id', sa.BigInteger(), nullable=True),
    sa.Column('batch', sa.String(length=40), nullable=False),
    sa.Column('occurred_on', sa.Date(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('grade', sa.SmallInteger(), nullable=True),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('raised_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('due_provisional', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_to', sa.String(length=12), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', sa.String(length=32), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('verified_on', sa.Date(), nullable=True),
    sa.Column('closed_by', sa.String(length=100), nullable=True),
    sa.Column('closed_by_name', sa.String(length=100), nullable=True),
    sa.Column('closed_by_role', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('warnings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_warnings_person_id'), ['person_id'], unique=False)
        batch_op.create_index('ix_warnings_status_due', ['status', 'due_on'], unique=False)

    op.create_table('zero_reports',
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('found_count', sa.Integer(), nullable=False),
    sa.Column('filed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('region_code', 'period')
    )


def downgrade() -> None:
    op.drop_table('zero_reports')
    with op.batch_alter_table('warnings', schema=None) as batch_op:
        batch_op.drop_index('ix_warnings_status_due')
        batch_op.drop_index(batch_op.f('ix_warnings_person_id'))

    op.drop_table('warnings')
    with op.batch_alter_table('warning_actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_warning_actions_warning_id'))

    op.drop_table('warning_actions')
    with op.batch_alter_table('tekun_visits', schema=None) as batch_op:
        batch_op.drop_index('ix_tekun_visits_region_day')
        batch_op.drop_index(batch_op.f('ix_tekun_visits_person_id'))

    op.drop_table('tekun_visits')
    with op.batch_alter_table('sla_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sla_events_region_code'))

    op.drop_table('sla_events')
    with op.batch_alter_table('reserve_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reserve_alerts_township_code'))
        batch_op.drop_index(batch_op.f('ix_reserve_alerts_observed_on'))

    op.drop_table('reserve_alerts')
    op.drop_table('reporting_units')
    with op.batch_alter_table('register_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_register_history_person_id'))

    op.drop_table('register_history')
    with op.batch_alter_table('register', schema=None) as batch_op:
        batch_op.drop_index('ix_register_region_category')

    op.drop_table('register')
    with op.batch_alter_table('recoveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recoveries_region_code'))

    op.drop_table('recoveries')
    with op.batch_alter_table('potential_cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_potential_cases_region_code'))
        batch_op.drop_index(batch_op.f('ix_potential_cases_person_id'))

    op.drop_table('potential_cases')
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payouts_region_code'))
        batch_op.drop_index(batch_op.f('ix_payouts_paid_on'))

    op.drop_table('payouts')
    with op.batch_alter_table('partner_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_partner_records_file_id'))

    op.drop_table('partner_records')
    with op.batch_alter_table('partner_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_partner_nonces_seen_at'))

    op.drop_table('partner_nonces')
    op.drop_table('comparison_files')
    with op.batch_alter_table('comparison_file_errors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comparison_file_errors_file_id'))

    op.drop_table('comparison_file_errors')
