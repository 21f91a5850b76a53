"""monitoring: identity numbers at rest become person keys (issue 8)

Every person column (register, register_history, potential_cases, partner_records, warnings,
recoveries, tekun_visits) and the warnings' dedupe keys (``death:<number>`` …) now hold the
person key (shared/pii.py: HMAC of the number): the register is matched by key, and
monitoring's comparison joins partner records to it on the key. The numbers move into the new
``person_vault`` (AES-GCM, associated data ``person:<key>``), read only to show a person to
staff and to put the number on an event. Existing rows are converted with DATA_ENCRYPTION_KEY
from the environment (the key the service runs with); the downgrade converts them back.

A 5M-person register converts row by row in Python (batched updates): plan it as a one-off
job of a few minutes. Audit entries already written keep what they recorded (their hash chain
covers entity_id); new entries carry the key.

Revision ID: 0005pii
Revises: 0004
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

from shared.pii import KEY_LENGTH, Columns, convert_rows, widen

revision = "0005pii"
down_revision = "0004"
branch_labels = None
depends_on = None

PERSON_COLUMNS = {t: ("person_id",) for t in ("register", "register_history", "potential_cases", "partner_records",
                                              "warnings", "recoveries", "tekun_visits")}
SPECS = [
    Columns("register", ("person_id", "category"), ids=("person_id",)),
    Columns("register_history", ("id",), ids=("person_id",)),
    Columns("potential_cases", ("id",), ids=("person_id",)),
    Columns("partner_records", ("id",), ids=("person_id",), json=("data",)),
    Columns("warnings", ("id",), ids=("person_id",), coded=("dedupe_key",)),
    Columns("recoveries", ("payment_id",), ids=("person_id",)),
    Columns("tekun_visits", ("id",), ids=("person_id",)),
]


def _secret() -> str:
    from services.monitoring.settings import Settings
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
