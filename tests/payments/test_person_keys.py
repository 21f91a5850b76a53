"""Issue 8: payments keeps person keys, never identity numbers (shared/pii.py). Its rows and
ledger accounts name people by key, the numbers sit AES-GCM encrypted in ``person_vault``, and
every look-up by person (beneficiary, payments by person, ledger statement) still works by
number; migration 0005pii converts rows stored with numbers, and its downgrade restores them."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from services.payments.app import SERVICE_DIR
from services.payments.models import entitlements, ledger_entries, metadata, payments, person_vault
from shared.crypto import cipher_for
from shared.settings import DEV_DATA_KEY
from tests.payments.helpers import (
    FakeBank, decision, deliver, fund_county, make_payments, person, set_account, svc,
)
from tests.support import COUNTY, TOWNSHIP, auth, dump_tables, fetch_sql, migrate, run_sql, running

NUMBER = "6222020200112233445"
OTHER_KEY = "another-data-encryption-key-0123456789-abcdef"




async def test_rows_hold_person_keys_and_lookups_by_number_still_work(database_url: str) -> None:
    app = make_payments(database_url, FakeBank())
    key = cipher_for(DEV_DATA_KEY).index
    async with running(app) as c:
        await fund_county(c, "100000.00")
        await deliver(app, decision(program="dibao", amount=None, monthly="500.00", person_seq=3))
        assert (await set_account(c, person(3), NUMBER)).status_code == 200
        r = await c.post("/v1/payroll-runs", json={"region_code": COUNTY, "month": "2026-11"},
                         headers=auth("county_finance"))
        assert r.status_code == 201, r.text

        stored = await dump_tables(app, metadata, skip=frozenset())
        assert person(3) not in stored and person(3)[6:14] + person(3)[-4:] not in stored
        async with app.state.runtime.session_factory() as s:
            pay = (await s.execute(sa.select(payments))).mappings().one()
            ent = (await s.execute(sa.select(entitlements))).mappings().one()
            accounts = set((await s.execute(sa.select(ledger_entries.c.account))).scalars())
            vault = (await s.execute(sa.select(person_vault))).mappings().all()
        assert pay["person_id"] == ent["payee_person_id"] == key(person(3))
        assert f"payable:{key(person(3))}" in accounts
        assert [v["person_key"] for v in vault] == [key(person(3))] and vault[0]["person_enc"].startswith("v1:")
        assert svc(app).payouts.persons.open(vault[0]["person_key"], vault[0]["person_enc"]) == person(3)

        # by number, as before: the beneficiary, the payments of a person, the person's payable
        ben = (await c.get(f"/v1/beneficiaries/{person(3)}", headers=auth("county_finance"))).json()
        assert ben["person_id"] == person(3) and ben["account"]["account_number"] == NUMBER
        masked = (await c.get(f"/v1/beneficiaries/{person(3)}", headers=auth("township_clerk", TOWNSHIP))).json()
        assert masked["account"]["account_number"] != NUMBER  # the clerk sees the account masked
        listed = (await c.get("/v1/payments", params={"region_code": COUNTY, "person_id": person(3)},
                              headers=auth("county_finance"))).json()
        assert [p["person_id"] for p in listed] == [person(3)]
        assert (await c.get("/v1/payments", params={"region_code": COUNTY, "person_id": person(4)},
                            headers=auth("county_finance"))).json() == []
        r = await c.get(f"/v1/ledger/accounts/payable:{person(3)}/entries", headers=auth("county_finance"))
        assert r.status_code == 200 and r.json()["balance"] == "500.00", r.text
        assert r.json()["account"] == f"payable:{key(person(3))}"
        seen = await c.get(f"/v1/payments/{listed[0]['payment_id']}", headers=auth("monitoring_operator"))
        assert seen.status_code == 200 and seen.json()["person_id"] == person(3)[:3] + "*" * 11 + person(3)[-4:]


# -- migration 0005pii -------------------------------------------------------------------------







TABLES = ("payments", "entitlements", "entitlement_persons", "deaths", "payee_accounts", "payment_attempts",
          "ledger_entries", "payment_recoveries")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0005pii_converts_numbers_to_keys_and_the_downgrade_restores_them(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    url = (f"sqlite+aiosqlite:///{tmp_path}/m.db" if backend == "sqlite"
           else request.getfixturevalue("pg_databases").new("paypii"))
    monkeypatch.setenv("DATA_ENCRYPTION_KEY", OTHER_KEY)  # the migration uses the service's key
    cipher = cipher_for(OTHER_KEY)
    pid, other = person(7), person(8)
    migrate(SERVICE_DIR, url, "0004")
    run_sql(url, sa.text(
        "INSERT INTO payee_accounts (person_id, account_enc, account_index, account_masked, updated_at, updated_by) "
        "VALUES (:p, :enc, :ix, '***3445', CURRENT_TIMESTAMP, 'test')").bindparams(
            p=pid, enc=cipher.encrypt(NUMBER, context=f"payee_account:{pid}"), ix=cipher.index(NUMBER)),
        sa.text("INSERT INTO entitlements (id, program, region_code, county_code, payee_person_id, covered_count, "
                "monthly_fen, amount_from, first_month, status, updated_at) VALUES ('E1', 'dibao', :r, :c, :p, 2, "
                "50000, '2026-11-01', '2026-11-01', 'active', CURRENT_TIMESTAMP)").bindparams(p=pid, r=TOWNSHIP, c=COUNTY),
        sa.text("INSERT INTO entitlement_persons (entitlement_id, person_id) VALUES ('E1', :p), ('E1', :o)")
        .bindparams(p=pid, o=other),
        sa.text("INSERT INTO deaths (person_id, date_of_death, source, reported_at) "
                "VALUES (:o, '2026-11-20', 'civil', CURRENT_TIMESTAMP)").bindparams(o=other),
        sa.text("INSERT INTO payments (id, kind, program, entitlement_id, month, person_id, region_code, source_account, "
                "amount_fen, status, created_at) VALUES ('B1', 'benefit', 'dibao', 'E1', '2026-11-01', :p, :r, "
                "'county_budget:x', 50000, 'paid', CURRENT_TIMESTAMP)").bindparams(p=pid, r=TOWNSHIP),
        sa.text("INSERT INTO payment_attempts (payment_id, attempt, idempotency_key, account_enc, account_masked, "
                "amount_fen, requested_at) VALUES ('B1', 1, 'B1', :enc, '***3445', 50000, CURRENT_TIMESTAMP)")
        .bindparams(enc=cipher.encrypt(NUMBER, context=f"payee_account:{pid}")),
        sa.text("INSERT INTO payment_recoveries (payment_id, person_id, amount_fen, paid_on, date_of_death, status, "
                "flagged_at) VALUES ('B1', :p, 50000, '2026-11-25', '2026-11-20', 'open', CURRENT_TIMESTAMP)")
        .bindparams(p=pid),
        sa.text("INSERT INTO ledger_transactions (id, kind, actor, created_at) VALUES (1, 'payroll', 't', CURRENT_TIMESTAMP)"),
        sa.text("INSERT INTO ledger_entries (transaction_id, account, side, amount_fen, payment_id) VALUES "
                "(1, :a, 'D', 50000, 'B1'), (1, 'county_budget:522701000000', 'C', 50000, NULL)")
        .bindparams(a=f"payable:{pid}"))

    migrate(SERVICE_DIR, url, "head")
    dump = "".join(repr(fetch_sql(url, f"SELECT * FROM {t}")) for t in TABLES)
    assert pid not in dump and other not in dump
    assert fetch_sql(url, "SELECT payee_person_id FROM entitlements") == [{"payee_person_id": cipher.index(pid)}]
    assert sorted(r["person_id"] for r in fetch_sql(url, "SELECT person_id FROM entitlement_persons")) == sorted(
        [cipher.index(pid), cipher.index(other)])
    assert fetch_sql(url, "SELECT person_id FROM deaths") == [{"person_id": cipher.index(other)}]
    assert {r["account"] for r in fetch_sql(url, "SELECT account FROM ledger_entries")} == {
        f"payable:{cipher.index(pid)}", "county_budget:522701000000"}
    vault = {r["person_key"]: r["person_enc"] for r in fetch_sql(url, "SELECT * FROM person_vault")}
    assert {k: cipher.decrypt(v, context=f"person:{k}") for k, v in vault.items()} == {
        cipher.index(pid): pid, cipher.index(other): other}
    # the account ciphertexts now bound to the key (a moved row still does not decrypt)
    for r in fetch_sql(url, "SELECT account_enc FROM payee_accounts") + fetch_sql(url, "SELECT account_enc FROM payment_attempts"):
        assert cipher.decrypt(r["account_enc"], context=f"payee_account:{cipher.index(pid)}") == NUMBER
    with pytest.raises(Exception, match="append-only"):  # the conversion put the ledger's guard back
        run_sql(url, sa.text("UPDATE ledger_entries SET amount_fen = 1"))

    migrate(SERVICE_DIR, url, "0004", down=True)
    assert fetch_sql(url, "SELECT payee_person_id FROM entitlements") == [{"payee_person_id": pid}]
    assert fetch_sql(url, "SELECT person_id FROM deaths") == [{"person_id": other}]
    assert {r["account"] for r in fetch_sql(url, "SELECT account FROM ledger_entries")} == {
        f"payable:{pid}", "county_budget:522701000000"}
    token = fetch_sql(url, "SELECT account_enc FROM payee_accounts")[0]["account_enc"]
    assert cipher.decrypt(token, context=f"payee_account:{pid}") == NUMBER
    migrate(SERVICE_DIR, url, "head")  # and up again
    assert fetch_sql(url, "SELECT person_id FROM payments") == [{"person_id": cipher.index(pid)}]
