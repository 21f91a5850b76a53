"""monitoring: a covering index for the comparison's register probe (PostgreSQL)

The monthly comparison probes the register once per person of a partner file (hundreds of
thousands of probes). With the person key in "C" collation (byte comparison instead of the
database collation's) and category and village carried in the index, each probe is an
index-only scan: no heap page per match. On SQLite (tests, small deployments) nothing changes.

Revision ID: 20261201_compare
Revises: 0005pii
Create Date: 2026-12-01
"""
from alembic import op

revision = "20261201_compare"
down_revision = "0005pii"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('CREATE INDEX IF NOT EXISTS ix_register_lookup ON register '
                   '(person_id COLLATE "C") INCLUDE (category, region_code)')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_register_lookup")
