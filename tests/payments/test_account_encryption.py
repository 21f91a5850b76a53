"""Issue 8: bank account numbers encrypted at rest (AES-GCM, key DATA_ENCRYPTION_KEY), a keyed
hash as the look-up index, decrypted only for the bank and the paying roles; migration 0003
encrypts rows stored in plain text and its downgrade restores them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.exceptions import InvalidTag

from services.payments.accounts import AccountVault
from services.payments.app import SERVICE_DIR
from services.payments.models import payee_accounts, payment_attempts
from shared.crypto import cipher_for
from shared.migrations import alembic_config
from shared.settings import DEV_DATA_KEY
from tests.payments.helpers import (
    FakeBank, allocate, decision, deliver, fund_county, make_payments, only_disbursement, person, set_account,
    sign_all, svc,
)
from tests.support import TOWNSHIP, auth, fetch_sql, run_sql, running

NUMBER = "6222020200112233445"
OTHER_KEY = "another-data-encryption-key-0123456789-abcdef"


async def _paid_once(app: Any, c: Any, number: str = NUMBER) -> str:
    await fund_county(c)
    await allocate(c, "5000.00")
    d = decision(amount="800.00")
    await deliver(app, d)
    did = await only_disbursement(app)
    assert (await set_account(c, d.applicant_person_id, number)).status_code == 200
    await sign_all(c, did)
    return f"{did}-1"


async def _raw(app: Any, table: sa.Table) -> list[dict[str, Any]]:
    async with app.state.runtime.session_factory() as s:
        return [dict(r) for r in (await s.execute(sa.select(table))).mappings()]


async def test_the_database_never_holds_the_plain_number_and_the_bank_gets_it(database_url: str) -> None:
    bank = FakeBank()
    app = make_payments(database_url, bank)
    async with running(app) as c:
        pid = await _paid_once(app, c)
        stats = await svc(app).payouts.dispatch_once()
        assert stats.accepted == 1, stats
        assert [body["account_number"] for _, body in bank.requests] == [NUMBER]  # the bank: the real number

        accounts, attempts = await _raw(app, payee_accounts), await _raw(app, payment_attempts)
        assert len(accounts) == 1 and len(attempts) == 1
        for row in accounts + attempts:
            assert NUMBER not in repr(row) and NUMBER[-8:] not in repr(row)
            assert row["account_enc"].startswith("v1:") and row["account_masked"] == "***************3445"
        cipher = cipher_for(DEV_DATA_KEY)
        assert accounts[0]["account_index"] == cipher.index(NUMBER)  # equality look-ups without decrypting
        assert cipher.decrypt(attempts[0]["account_enc"], context=f"payee_account:{cipher.index(person(1))}") == NUMBER  # bound to the person key

        r = await c.get(f"/v1/payments/{pid}", headers=auth("county_finance"))
        assert r.json()["attempts"][0]["account_number"] == NUMBER
        r = await c.get(f"/v1/payments/{pid}", headers=auth("township_clerk", TOWNSHIP))
        assert r.json()["attempts"][0]["account_number"] == "***************3445"
    if database_url.startswith("sqlite"):
        db = Path(database_url.split("///", 1)[1])
        for f in db.parent.glob(db.name + "*"):  # the database and any -wal/-journal file
            assert NUMBER.encode() not in f.read_bytes(), f


async def test_a_wrong_key_or_a_moved_ciphertext_does_not_decrypt(database_url: str) -> None:
    bank = FakeBank()
    app = make_payments(database_url, bank)
    async with running(app) as c:
        await _paid_once(app, c)
        token = (await _raw(app, payee_accounts))[0]["account_enc"]
    key = cipher_for(DEV_DATA_KEY).index  # rows name the payee by person key (shared/pii.py)
    with pytest.raises(InvalidTag):
        AccountVault(OTHER_KEY).open(key(person(1)), token)
    with pytest.raises(InvalidTag):  # bound to its payee: copied onto another person's row it is useless
        AccountVault(DEV_DATA_KEY).open(key(person(2)), token)
    assert AccountVault(DEV_DATA_KEY).open(key(person(1)), token) == NUMBER

    # the same database under another key: nothing goes to the bank, the payment waits, it is said
    app = make_payments(database_url, bank, data_encryption_key=OTHER_KEY)
    async with running(app):
        stats = await svc(app).payouts.dispatch_once()
        assert stats.claimed == 0 and stats.errors and "decrypt" in stats.errors[0]
        assert bank.requests == []


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    cfg = alembic_config(SERVICE_DIR, url)
    (command.downgrade if down else command.upgrade)(cfg, revision)






@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0003_encrypts_existing_rows_and_the_downgrade_restores_them(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    url = (f"sqlite+aiosqlite:///{tmp_path}/m.db" if backend == "sqlite"
           else request.getfixturevalue("pg_databases").new("paymig"))
    monkeypatch.setenv("DATA_ENCRYPTION_KEY", OTHER_KEY)  # the migration uses the service's key
    _migrate(url, "0002")
    pid = person(7)
    run_sql(url, sa.text(
        "INSERT INTO payee_accounts (person_id, account_number, account_name, bank_name, updated_at, updated_by) "
        "VALUES (:p, :n, '张三', '农村信用社', CURRENT_TIMESTAMP, 'test')").bindparams(p=pid, n=NUMBER),
        sa.text("INSERT INTO payments (id, kind, program, person_id, region_code, source_account, amount_fen, "
                "status, created_at) VALUES ('P1', 'linshi', 'linshi', :p, :r, 'reserve:x', 100, 'paid', "
                "CURRENT_TIMESTAMP)").bindparams(p=pid, r=TOWNSHIP),
        sa.text("INSERT INTO payment_attempts (payment_id, attempt, idempotency_key, account_number, amount_fen, "
                "requested_at) VALUES ('P1', 1, 'P1', :n, 100, CURRENT_TIMESTAMP)").bindparams(n=NUMBER))

    _migrate(url, "0004")  # 0005pii (person keys) has its own test in tests/payments/test_person_keys.py
    account = fetch_sql(url, "SELECT * FROM payee_accounts")[0]
    attempt = fetch_sql(url, "SELECT * FROM payment_attempts")[0]
    assert "account_number" not in account and "account_number" not in attempt
    assert NUMBER not in repr(account) + repr(attempt)
    vault = AccountVault(OTHER_KEY)
    assert vault.open(pid, account["account_enc"]) == vault.open(pid, attempt["account_enc"]) == NUMBER
    assert account["account_index"] == vault.index(NUMBER) and attempt["account_masked"] == "***************3445"
    if backend == "sqlite":
        assert NUMBER.encode() not in (tmp_path / "m.db").read_bytes()

    _migrate(url, "0002", down=True)
    assert fetch_sql(url, "SELECT account_number FROM payee_accounts") == [{"account_number": NUMBER}]
    assert fetch_sql(url, "SELECT account_number FROM payment_attempts") == [{"account_number": NUMBER}]
    _migrate(url, "0004")  # and up again
    assert AccountVault(OTHER_KEY).open(pid, fetch_sql(url, "SELECT account_enc FROM payee_accounts")[0]["account_enc"]) == NUMBER
