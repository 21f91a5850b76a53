"""payments: bank account numbers encrypted at rest (issue 8)

payee_accounts.account_number and payment_attempts.account_number (plain text) become
account_enc (AES-GCM, shared.crypto, associated data "payee_account:<person id>"),
account_masked (what the roles that do not pay see) and, on payee_accounts, account_index
(HMAC of the number, for equality look-ups). Existing rows are encrypted here with
DATA_ENCRYPTION_KEY from the environment, the key the service itself runs with; the
downgrade decrypts them back with the same key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

from shared.crypto import FieldCipher, cipher_for
from shared.idnumbers import mask_account_number

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ACCOUNTS = sa.table("payee_accounts", sa.column("person_id"), sa.column("account_number"),
                     sa.column("account_enc"), sa.column("account_index"), sa.column("account_masked"))
_ATTEMPTS = sa.table("payment_attempts", sa.column("payment_id"), sa.column("attempt"), sa.column("account_number"),
                     sa.column("account_enc"), sa.column("account_masked"))
_PAYMENTS = sa.table("payments", sa.column("id"), sa.column("person_id"))


def _cipher() -> FieldCipher:
    from services.payments.settings import Settings
    return cipher_for(Settings().data_encryption_key)


def _context(person_id: str) -> str:
    return f"payee_account:{person_id}"  # services/payments/accounts.py


def _attempt_rows(bind: sa.Connection, column: str) -> list[sa.Row]:
    rows = bind.execute(sa.select(_ATTEMPTS.c.payment_id, _ATTEMPTS.c.attempt, _ATTEMPTS.c[column],
                                  _PAYMENTS.c.person_id)
                        .select_from(_ATTEMPTS.outerjoin(_PAYMENTS, _PAYMENTS.c.id == _ATTEMPTS.c.payment_id))).all()
    orphans = [r.payment_id for r in rows if r.person_id is None]
    if orphans:
        raise RuntimeError(f"payment_attempts without a payment (cannot bind the account to a payee): {orphans[:5]}")
    return rows


def upgrade() -> None:
    with op.batch_alter_table("payee_accounts") as b:
        b.add_column(sa.Column("account_enc", sa.String(128), nullable=True))
        b.add_column(sa.Column("account_index", sa.String(64), nullable=True))
        b.add_column(sa.Column("account_masked", sa.String(40), nullable=True))
    with op.batch_alter_table("payment_attempts") as b:
        b.add_column(sa.Column("account_enc", sa.String(128), nullable=True))
        b.add_column(sa.Column("account_masked", sa.String(40), nullable=True))

    bind = op.get_bind()
    accounts = bind.execute(sa.select(_ACCOUNTS.c.person_id, _ACCOUNTS.c.account_number)).all()
    attempts = _attempt_rows(bind, "account_number")
    if accounts or attempts:
        cipher = _cipher()
        for r in accounts:
            bind.execute(_ACCOUNTS.update().where(_ACCOUNTS.c.person_id == r.person_id).values(
                account_enc=cipher.encrypt(r.account_number, context=_context(r.person_id)),
                account_index=cipher.index(r.account_number), account_masked=mask_account_number(r.account_number)))
        for r in attempts:
            bind.execute(_ATTEMPTS.update().where(_ATTEMPTS.c.payment_id == r.payment_id,
                                                  _ATTEMPTS.c.attempt == r.attempt).values(
                account_enc=cipher.encrypt(r.account_number, context=_context(r.person_id)),
                account_masked=mask_account_number(r.account_number)))

    with op.batch_alter_table("payee_accounts") as b:
        b.alter_column("account_enc", existing_type=sa.String(128), nullable=False)
        b.alter_column("account_index", existing_type=sa.String(64), nullable=False)
        b.alter_column("account_masked", existing_type=sa.String(40), nullable=False)
        b.drop_column("account_number")
        b.create_index("ix_payee_accounts_account_index", ["account_index"])
    with op.batch_alter_table("payment_attempts") as b:
        b.alter_column("account_enc", existing_type=sa.String(128), nullable=False)
        b.alter_column("account_masked", existing_type=sa.String(40), nullable=False)
        b.drop_column("account_number")


def downgrade() -> None:
    with op.batch_alter_table("payee_accounts") as b:
        b.add_column(sa.Column("account_number", sa.String(40), nullable=True))
    with op.batch_alter_table("payment_attempts") as b:
        b.add_column(sa.Column("account_number", sa.String(40), nullable=True))

    bind = op.get_bind()
    accounts = bind.execute(sa.select(_ACCOUNTS.c.person_id, _ACCOUNTS.c.account_enc)).all()
    attempts = _attempt_rows(bind, "account_enc")
    if accounts or attempts:
        cipher = _cipher()
        for r in accounts:
            bind.execute(_ACCOUNTS.update().where(_ACCOUNTS.c.person_id == r.person_id).values(
                account_number=cipher.decrypt(r.account_enc, context=_context(r.person_id))))
        for r in attempts:
            bind.execute(_ATTEMPTS.update().where(_ATTEMPTS.c.payment_id == r.payment_id,
                                                  _ATTEMPTS.c.attempt == r.attempt).values(
                account_number=cipher.decrypt(r.account_enc, context=_context(r.person_id))))

    with op.batch_alter_table("payee_accounts") as b:
        b.drop_index("ix_payee_accounts_account_index")
        b.alter_column("account_number", existing_type=sa.String(40), nullable=False)
        for col in ("account_masked", "account_index", "account_enc"):
            b.drop_column(col)
    with op.batch_alter_table("payment_attempts") as b:
        b.alter_column("account_number", existing_type=sa.String(40), nullable=False)
        for col in ("account_masked", "account_enc"):
            b.drop_column(col)
