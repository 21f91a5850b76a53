"""eligibility: identity numbers at rest become person keys (issue 8)

cases.applicant_person_id and benefits.applicant_person_id, and every number inside the JSON
columns — households (cases, benefit_households, decisions.inputs, cases.proposal_inputs),
traces (decisions.assessment, cases.proposal: covered members, breakdown lines), covered lists
(decisions.covered, benefits.covered) and the facts' income maps (case_facts.monthly_incomes,
keyed by person) — now hold the person key (shared/pii.py: HMAC of the number). The numbers
move into the new ``person_vault`` (AES-GCM, associated data ``person:<key>``). Existing rows
are converted with DATA_ENCRYPTION_KEY from the environment (the key the service runs with);
the downgrade converts them back. Audit entries already written keep what they recorded (their
hash chain covers them; they hold masked numbers only).

Revision ID: 0004pii
Revises: 0003
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

from shared.pii import KEY_LENGTH, Columns, convert_rows, widen

revision = "0004pii"
down_revision = "0003"
branch_labels = None
depends_on = None

PERSON_COLUMNS = {"cases": ("applicant_person_id",), "benefits": ("applicant_person_id",)}
SPECS = [
    Columns("cases", ("id",), ids=("applicant_person_id",), json=("household", "proposal", "proposal_inputs")),
    Columns("case_facts", ("seq",), json=("monthly_incomes",)),
    Columns("decisions", ("id",), json=("covered", "inputs", "assessment")),
    Columns("benefits", ("case_id",), ids=("applicant_person_id",), json=("covered",)),
    Columns("benefit_households", ("case_id",), json=("household",)),
]


def _secret() -> str:
    from services.eligibility.settings import Settings
    return Settings().data_encryption_key


def upgrade() -> None:
    op.create_table("person_vault",
                    sa.Column("person_key", sa.String(KEY_LENGTH), primary_key=True),
                    sa.Column("person_enc", sa.String(128), nullable=False))
    widen(op, PERSON_COLUMNS, 18, KEY_LENGTH)
    convert_rows(op.get_bind(), _secret(), SPECS, to_keys=True)


def downgrade() -> None:
    convert_rows(op.get_bind(), _secret(), SPECS, to_keys=False)
    widen(op, PERSON_COLUMNS, KEY_LENGTH, 18)
    op.drop_table("person_vault")
