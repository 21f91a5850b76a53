"""intake: identity numbers encrypted at rest in applications (issue 8)

applications.applicant_person_id (plain 身份证号) becomes applicant_person_enc (AES-GCM,
shared.crypto, associated data "applicant:<application id>") and applicant_person_index (its
HMAC, the look-up index); the household JSON (every member's number, birth date, income)
becomes household_enc, one AES-GCM ciphertext ("household:<application id>"); open_key is
rebuilt as "<index>:<program>" (hence 100 characters). Existing rows are encrypted here with
DATA_ENCRYPTION_KEY from the environment, the key the service itself runs with; the
downgrade decrypts them back with the same key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
import orjson
import sqlalchemy as sa
from alembic import op

from shared.crypto import FieldCipher, cipher_for

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_APPS = sa.table("applications", sa.column("id"), sa.column("program"), sa.column("open_key"),
                 sa.column("applicant_person_id"), sa.column("household", sa.JSON),
                 sa.column("applicant_person_enc"), sa.column("applicant_person_index"), sa.column("household_enc"))


def _cipher() -> FieldCipher:
    from services.intake.settings import Settings
    return cipher_for(Settings().data_encryption_key)


def upgrade() -> None:
    with op.batch_alter_table("applications") as b:
        b.add_column(sa.Column("applicant_person_enc", sa.String(128), nullable=True))
        b.add_column(sa.Column("applicant_person_index", sa.String(64), nullable=True))
        b.add_column(sa.Column("household_enc", sa.Text, nullable=True))
        b.alter_column("open_key", existing_type=sa.String(40), type_=sa.String(100), existing_nullable=True)

    bind = op.get_bind()
    rows = bind.execute(sa.select(_APPS.c.id, _APPS.c.program, _APPS.c.open_key, _APPS.c.applicant_person_id,
                                  _APPS.c.household)).all()
    if rows:
        cipher = _cipher()
        for r in rows:
            index = cipher.index(r.applicant_person_id)
            bind.execute(_APPS.update().where(_APPS.c.id == r.id).values(
                applicant_person_enc=cipher.encrypt(r.applicant_person_id, context=f"applicant:{r.id}"),
                applicant_person_index=index,
                household_enc=cipher.encrypt(orjson.dumps(r.household).decode(), context=f"household:{r.id}"),
                open_key=None if r.open_key is None else f"{index}:{r.program}"))

    with op.batch_alter_table("applications") as b:
        b.alter_column("applicant_person_enc", existing_type=sa.String(128), nullable=False)
        b.alter_column("applicant_person_index", existing_type=sa.String(64), nullable=False)
        b.alter_column("household_enc", existing_type=sa.Text, nullable=False)
        b.drop_column("applicant_person_id")
        b.drop_column("household")
        b.create_index("ix_applications_applicant_person_index", ["applicant_person_index"])


def downgrade() -> None:
    with op.batch_alter_table("applications") as b:
        b.add_column(sa.Column("applicant_person_id", sa.String(18), nullable=True))
        b.add_column(sa.Column("household", sa.JSON, nullable=True))

    bind = op.get_bind()
    rows = bind.execute(sa.select(_APPS.c.id, _APPS.c.program, _APPS.c.open_key, _APPS.c.applicant_person_enc,
                                  _APPS.c.household_enc)).all()
    if rows:
        cipher = _cipher()
        for r in rows:
            person = cipher.decrypt(r.applicant_person_enc, context=f"applicant:{r.id}")
            bind.execute(_APPS.update().where(_APPS.c.id == r.id).values(
                applicant_person_id=person,
                household=orjson.loads(cipher.decrypt(r.household_enc, context=f"household:{r.id}")),
                open_key=None if r.open_key is None else f"{person}:{r.program}"))

    with op.batch_alter_table("applications") as b:
        b.drop_index("ix_applications_applicant_person_index")
        b.alter_column("applicant_person_id", existing_type=sa.String(18), nullable=False)
        b.alter_column("household", existing_type=sa.JSON, nullable=False)
        b.alter_column("open_key", existing_type=sa.String(100), type_=sa.String(40), existing_nullable=True)
        for col in ("household_enc", "applicant_person_index", "applicant_person_enc"):
            b.drop_column(col)
