"""eligibility: identity numbers at rest become person keys (issue 8)

cases.applicant_person_id and benefits.applicant_person_id, and every number inside the JSON
columns — households (cases, benefit_households, decisions.inputs, cases.proposal_inputs),
traces (decisions.assessment, cases.proposal: covered members, breakdown lines), covered lists
(decisions.covered, benefits.covered) and the facts' income maps (case_facts.monthly_incomes,
keyed by person) — now hold the person key (shared/pii.py: HMAC of the number). The numbers
move into the new ``person_vault`` (AES-GCM, associated data ``person:<key>``), and each
benefit household gets ``numbers_enc`` (its people's numbers as one ciphertext bound to the
case, read by re-evaluation with the household instead of a vault look-up per person). Existing rows
are converted with DATA_ENCRYPTION_KEY from the environment (the key the service runs with);
the downgrade converts them back. Audit entries already written keep what they recorded (their
hash chain covers them; they hold masked numbers only).

Revision ID: 0004pii
Revises: 0003
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

from shared.pii import KEY_LENGTH, Columns, PersonVault, convert_rows, widen

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


_HOUSEHOLDS = sa.table("benefit_households", sa.column("case_id"), sa.column("household", sa.JSON),
                       sa.column("numbers_enc"))
_BENEFITS = sa.table("benefits", sa.column("case_id"), sa.column("applicant_person_id"))
_VAULT = sa.table("person_vault", sa.column("person_key"), sa.column("person_enc"))


def _seal_household_numbers(bind: sa.Connection, secret: str) -> None:
    """numbers_enc of every benefit household (services/eligibility/models.py), from the vault."""
    vault = PersonVault(secret, _VAULT)  # type: ignore[arg-type]
    plain = {k: vault.open(k, t) for k, t in bind.execute(sa.select(_VAULT.c.person_key, _VAULT.c.person_enc))}
    applicants = dict(bind.execute(sa.select(_BENEFITS.c.case_id, _BENEFITS.c.applicant_person_id)).all())
    for case_id, household in bind.execute(sa.select(_HOUSEHOLDS.c.case_id, _HOUSEHOLDS.c.household)).all():
        keys = [m["person_id"] for m in household["members"]] + [applicants.get(case_id)]
        numbers = {k: plain[k] for k in keys if k in plain}
        bind.execute(_HOUSEHOLDS.update().where(_HOUSEHOLDS.c.case_id == case_id)
                     .values(numbers_enc=vault.seal_numbers(case_id, numbers)))


def upgrade() -> None:
    op.create_table("person_vault",
                    sa.Column("person_key", sa.String(KEY_LENGTH), primary_key=True),
                    sa.Column("person_enc", sa.String(128), nullable=False))
    widen(op, PERSON_COLUMNS, 18, KEY_LENGTH)
    secret = _secret()
    convert_rows(op.get_bind(), secret, SPECS, to_keys=True)
    with op.batch_alter_table("benefit_households") as b:
        b.add_column(sa.Column("numbers_enc", sa.Text, nullable=True))
    _seal_household_numbers(op.get_bind(), secret)
    with op.batch_alter_table("benefit_households") as b:
        b.alter_column("numbers_enc", existing_type=sa.Text, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("benefit_households") as b:
        b.drop_column("numbers_enc")
    convert_rows(op.get_bind(), _secret(), SPECS, to_keys=False)
    widen(op, PERSON_COLUMNS, KEY_LENGTH, 18)
    op.drop_table("person_vault")
