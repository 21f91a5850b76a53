"""payments: identity numbers at rest become person keys (issue 8)

Every person column (payments, disbursements, entitlements, entitlement_persons, deaths,
payment_recoveries, payee_accounts) and every per-person ledger account code
(``payable:<number>``, ``recovery_receivable:<number>``) now holds the person key
(shared/pii.py: HMAC of the number), and the numbers move into the new ``person_vault``
(AES-GCM, associated data ``person:<key>``). Account ciphertexts were bound to the payee's
number (``payee_account:<number>``); they are re-encrypted bound to the key. Existing rows are
converted with DATA_ENCRYPTION_KEY from the environment, the key the service runs with; the
downgrade converts them back from the vault.

Audit entries already written keep what they recorded: their hash chain covers entity_id,
and rewriting history is what the chain exists to reveal. New entries carry the key.

Revision ID: 0005pii
Revises: 0004
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

from shared.crypto import cipher_for
from shared.pii import KEY_LENGTH, Columns, convert_rows, widen

revision = "0005pii"
down_revision = "0004"
branch_labels = None
depends_on = None

PERSON_COLUMNS = {"payments": ("person_id",), "disbursements": ("person_id",), "payee_accounts": ("person_id",),
                  "entitlements": ("payee_person_id",), "entitlement_persons": ("person_id",),
                  "deaths": ("person_id",), "payment_recoveries": ("person_id",)}
SPECS = [
    Columns("payments", ("id",), ids=("person_id",)),
    Columns("disbursements", ("id",), ids=("person_id",)),
    Columns("entitlements", ("id",), ids=("payee_person_id",)),
    Columns("entitlement_persons", ("entitlement_id", "person_id"), ids=("person_id",)),
    Columns("deaths", ("person_id",), ids=("person_id",)),
    Columns("payment_recoveries", ("payment_id",), ids=("person_id",)),
    Columns("ledger_entries", ("id",), coded=("account",)),
]
_ACCOUNTS = sa.table("payee_accounts", sa.column("person_id"), sa.column("account_enc"))
_ATTEMPTS = sa.table("payment_attempts", sa.column("payment_id"), sa.column("attempt"), sa.column("account_enc"))
_PAYMENTS = sa.table("payments", sa.column("id"), sa.column("person_id"))


def _secret() -> str:
    from services.payments.settings import Settings
    return Settings().data_encryption_key


def _accounts(bind: sa.Connection) -> list[tuple[str, object, str, str]]:
    """(table, row id, the person, account ciphertext) of every stored account number."""
    out: list[tuple[str, object, str, str]] = []
    for person, token in bind.execute(sa.select(_ACCOUNTS.c.person_id, _ACCOUNTS.c.account_enc)):
        out.append(("payee_accounts", person, person, token))
    rows = bind.execute(sa.select(_ATTEMPTS.c.payment_id, _ATTEMPTS.c.attempt, _ATTEMPTS.c.account_enc,
                                  _PAYMENTS.c.person_id)
                        .select_from(_ATTEMPTS.join(_PAYMENTS, _PAYMENTS.c.id == _ATTEMPTS.c.payment_id)))
    for payment_id, attempt, token, person in rows:
        if token is not None:
            out.append(("payment_attempts", (payment_id, attempt), person, token))
    return out


def _rebind_accounts(bind: sa.Connection, before: list[tuple[str, object, str, str]], person_now: dict[str, str]) -> None:
    """Re-encrypt each account ciphertext bound to the person's new identifier
    (services/payments/accounts.py: associated data ``payee_account:<person>``)."""
    cipher = cipher_for(_secret())
    for table, rid, person, token in before:
        number = cipher.decrypt(token, context=f"payee_account:{person}")
        new = cipher.encrypt(number, context=f"payee_account:{person_now[person]}")
        if table == "payee_accounts":
            bind.execute(_ACCOUNTS.update().where(_ACCOUNTS.c.person_id == person_now[person]).values(account_enc=new))
        else:
            payment_id, attempt = rid  # type: ignore[misc]
            bind.execute(_ATTEMPTS.update().where(_ATTEMPTS.c.payment_id == payment_id, _ATTEMPTS.c.attempt == attempt)
                         .values(account_enc=new))


def _ledger_writable(writable: bool) -> None:
    """The ledger is append-only (0002's triggers). Renaming its per-person account codes is a
    schema change, not a correction: the triggers are lifted for this one statement and put
    back in the same transaction."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE ledger_entries {'DISABLE' if writable else 'ENABLE'} TRIGGER ledger_entries_append_only")
    elif writable:
        op.execute("DROP TRIGGER ledger_entries_no_update")
    else:
        op.execute("CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries "
                   "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: UPDATE refused'); END")


def upgrade() -> None:
    op.create_table("person_vault",
                    sa.Column("person_key", sa.String(KEY_LENGTH), primary_key=True),
                    sa.Column("person_enc", sa.String(128), nullable=False))
    widen(op, PERSON_COLUMNS, 18, KEY_LENGTH)
    widen(op, {"ledger_entries": ("account",)}, 64, 96)
    bind = op.get_bind()
    accounts = _accounts(bind)
    secret = _secret()
    _ledger_writable(True)
    convert_rows(bind, secret, SPECS + [Columns("payee_accounts", ("person_id",), ids=("person_id",))], to_keys=True)
    _ledger_writable(False)
    cipher = cipher_for(secret)
    _rebind_accounts(bind, accounts, {a[2]: cipher.index(a[2]) for a in accounts})


def downgrade() -> None:
    bind = op.get_bind()
    accounts = _accounts(bind)
    secret = _secret()
    cipher = cipher_for(secret)
    vault = sa.table("person_vault", sa.column("person_key"), sa.column("person_enc"))
    plain = {k: cipher.decrypt(t, context=f"person:{k}") for k, t in bind.execute(sa.select(vault.c.person_key,
                                                                                           vault.c.person_enc))}
    _ledger_writable(True)
    convert_rows(bind, secret, SPECS + [Columns("payee_accounts", ("person_id",), ids=("person_id",))], to_keys=False)
    _ledger_writable(False)
    _rebind_accounts(bind, accounts, {a[2]: plain.get(a[2], a[2]) for a in accounts})
    widen(op, PERSON_COLUMNS, KEY_LENGTH, 18)
    widen(op, {"ledger_entries": ("account",)}, 96, 64)
    op.drop_table("person_vault")
