"""Issue 8: eligibility keeps person keys, never identity numbers (shared/pii.py): cases,
households, facts, traces, decisions and benefits name people by key; the numbers sit AES-GCM
encrypted in ``person_vault`` and come back in the views, on DecisionMade and in the partners'
requests; an officer still names people by number; migration 0004pii converts stored rows."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.eligibility.app import SERVICE_DIR
from services.eligibility.models import benefit_households, benefits, case_facts, cases, decisions, metadata
from shared.crypto import cipher_for
from shared.events.eligibility import DecisionMade
from shared.settings import DEV_DATA_KEY
from tests.eligibility.helpers import (
    ALL_URLS, COUNTY, TOWNSHIP, Partners, app_for, deliver, events, member, publish, submitted, wait_status,
)
from tests.support import MESSAGING_TABLES, auth, dump_tables, migrate, on_db, running, table_rows

CLERK = auth("township_clerk", TOWNSHIP)
OTHER_KEY = "another-data-encryption-key-0123456789-abcdef"
ELDER = member(date(1950, 3, 1), 1, "100.00", labor_capacity="none")
SPOUSE = member(date(1952, 6, 1), 2, "0.00", labor_capacity="none")




async def test_rows_hold_keys_while_officers_partners_and_events_use_numbers(database_url: str) -> None:
    a, b = ELDER["person_id"], SPOUSE["person_id"]
    key = cipher_for(DEV_DATA_KEY).index
    partners = Partners(answers={"social_insurance": {"assets_within_limits": None, "summary": "养老金",
                                                      "monthly_incomes": {b: "50.00"}}})
    app = app_for(database_url, partners, partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        await publish(c, COUNTY, "2026-01-01", {"dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00"},
                      auth("county_civil_affairs"))
        case_id = await deliver(app, submitted([ELDER, SPOUSE]))
        case = await wait_status(c, case_id, "proposed", headers=CLERK)
        assert all(call["persons"] == [{"person_id": a, "name": None}, {"person_id": b, "name": None}]
                   for call in partners.calls)  # the partners are asked by number
        assert case["applicant_person_id"] == a and case["means_test"]["monthly_incomes"][b] == "50.00"
        stranger = member(date(1960, 1, 1), 9)["person_id"]
        bad = await c.post(f"/v1/cases/{case_id}/decision", headers=CLERK, json={
            "action": "override", "outcome": "approved", "monthly_amount": "500.00", "reason": "x",
            "covered_person_ids": [stranger]})  # matched by key against the stored household
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "covered_person_ids.0", bad.text
        r = await c.post(f"/v1/cases/{case_id}/decision", headers=CLERK, json={
            "action": "override", "outcome": "approved", "monthly_amount": "500.00", "covered_person_ids": [a],
            "reason": "配偶另有赡养"})
        assert r.status_code == 201, r.text
        assert r.json()["covered_person_ids"] == [a] and a in repr(r.json()["inputs"])

        made = await events(app, DecisionMade.TYPE)
        assert [(e.applicant_person_id, e.covered_person_ids) for e in made] == [(a, [a])]
        stored = await dump_tables(app, metadata, skip=MESSAGING_TABLES)
        assert a not in stored and b not in stored
        async with app.state.runtime.session_factory() as s:
            row = (await s.execute(sa.select(cases))).mappings().one()
            benefit = (await s.execute(sa.select(benefits))).mappings().one()
            facts = (await s.execute(sa.select(case_facts.c.monthly_incomes))).scalars().all()
        assert row["applicant_person_id"] == benefit["applicant_person_id"] == key(a)
        assert [m["person_id"] for m in row["household"]["members"]] == [key(a), key(b)]
        assert benefit["covered"] == [key(a)] and {key(b): "50.00"} in facts


# -- migration 0004pii -------------------------------------------------------------------------







@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0004pii_converts_numbers_to_keys_and_the_downgrade_restores_them(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    url = (f"sqlite+aiosqlite:///{tmp_path}/m.db" if backend == "sqlite"
           else request.getfixturevalue("pg_databases").new("elipii"))
    monkeypatch.setenv("DATA_ENCRYPTION_KEY", OTHER_KEY)  # the migration uses the service's key
    cipher = cipher_for(OTHER_KEY)
    a, b = ELDER["person_id"], SPOUSE["person_id"]
    now = datetime(2026, 9, 29, 2, tzinfo=timezone.utc)
    household = {"members": [{"person_id": a, "birth_date": "1950-03-01", "monthly_income": "100.00"},
                             {"person_id": b, "birth_date": "1952-06-01", "monthly_income": "0.00"}],
                 "assets_within_limits": True}
    trace = {"outcome": "approved", "covered_members": [a, b],
             "breakdown": [{"code": "D3", "person_id": b, "amount": "160.00", "text": "成员2"}]}
    migrate(SERVICE_DIR, url, "0003")

    async def seed(conn: Any) -> None:
        await conn.execute(cases.insert().values(
            id="C1", application_id="A1", channel="window", program="dibao", region_code=TOWNSHIP,
            handling_region_code=TOWNSHIP, area="urban", applicant_person_id=a, household=household,
            status="decided", received_at=now, opened_at=now, updated_at=now, proposal=trace,
            proposal_inputs={"program": "dibao", "household": household}, decision_id="D1"))
        await conn.execute(case_facts.insert().values(
            case_id="C1", source="social_insurance", origin="manual", monthly_incomes={b: "50.00"},
            recorded_at=now, recorded_by_sub="u", recorded_by_name="u", recorded_by_role="township_clerk"))
        await conn.execute(decisions.insert().values(
            id="D1", kind="decision", case_id="C1", action="confirm", outcome="approved", covered=[a, b],
            as_of=now.date(), effective_from=now.date(), policy_version="v1", policy_seq=1,
            inputs={"program": "dibao", "household": household}, assessment=trace, decided_at=now,
            decided_by_sub="u", decided_by_name="u", decided_by_role="township_clerk"))
        await conn.execute(benefits.insert().values(
            case_id="C1", region_code=TOWNSHIP, program="dibao", area="urban", status="active", outcome="approved",
            monthly_fen=50000, covered=[a, b], applicant_person_id=a, decision_id="D1", policy_version="v1",
            updated_at=now))
        await conn.execute(benefit_households.insert().values(case_id="C1", household=household, household_ref="D1"))
    on_db(url, seed)

    migrate(SERVICE_DIR, url, "head")
    ka, kb = cipher.index(a), cipher.index(b)
    for table in (cases, case_facts, decisions, benefits, benefit_households):
        assert a not in repr(table_rows(url, table)) and b not in repr(table_rows(url, table)), table.name
    case = table_rows(url, cases)[0]
    assert case["applicant_person_id"] == ka and [m["person_id"] for m in case["household"]["members"]] == [ka, kb]
    assert case["proposal"]["breakdown"][0]["person_id"] == kb and case["proposal"]["covered_members"] == [ka, kb]
    assert table_rows(url, case_facts)[0]["monthly_incomes"] == {kb: "50.00"}
    assert table_rows(url, decisions)[0]["covered"] == [ka, kb] and table_rows(url, benefits)[0]["applicant_person_id"] == ka
    assert table_rows(url, benefit_households)[0]["household"]["members"][1]["person_id"] == kb
    sealed = table_rows(url, benefit_households)[0]["numbers_enc"]  # the re-evaluation's copy, bound to the case
    assert json.loads(cipher.decrypt(sealed, context="numbers:C1")) == {ka: a, kb: b}

    vault = {r["person_key"]: r["person_enc"] for r in table_rows(url, metadata.tables["person_vault"])}
    assert {k: cipher.decrypt(v, context=f"person:{k}") for k, v in vault.items()} == {ka: a, kb: b}

    migrate(SERVICE_DIR, url, "0003", down=True)
    assert table_rows(url, cases)[0]["household"] == household and table_rows(url, decisions)[0]["assessment"] == trace
    assert table_rows(url, case_facts)[0]["monthly_incomes"] == {b: "50.00"}
    assert table_rows(url, benefits)[0]["applicant_person_id"] == a
