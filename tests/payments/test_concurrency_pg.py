"""Races on PostgreSQL (row locks, unique indexes, SKIP LOCKED): nothing is paid twice."""
from __future__ import annotations

import asyncio

import sqlalchemy as sa

from services.payments.models import disbursements, entitlements, ledger_transactions, payments, signoffs
from shared.messaging.tables import inbox
from tests.payments.helpers import (
    FakeBank, allocate, balance, count, decision, deliver, fund_county, make_payments, message, only_disbursement,
    set_account, svc,
)
from tests.support import COUNTY, TOWNSHIP, auth, running

RESERVE = f"reserve:{TOWNSHIP}"


async def test_p2_racing_last_signoffs_move_the_money_exactly_once(pg_url: str) -> None:
    app = make_payments(pg_url)
    async with running(app) as c:
        await fund_county(c)
        await allocate(c, "5000.00")
        await deliver(app, decision(amount="1000.00"))
        did = await only_disbursement(app)
        url = f"/v1/disbursements/{did}/signoffs"
        assert (await c.post(url, json={}, headers=auth("township_office_director", TOWNSHIP))).status_code == 201
        results = await asyncio.gather(
            c.post(url, json={}, headers=auth("township_office_leader", TOWNSHIP)),
            c.post(url, json={}, headers=auth("township_finance_leader", TOWNSHIP)))
        assert sorted(r.status_code for r in results) == [201, 201]
        assert await balance(c, RESERVE) == "4000.00"
        assert await count(app, ledger_transactions, ledger_transactions.c.kind == "earmark") == 1
        r = await c.get(f"/v1/disbursements/{did}", headers=auth("township_clerk", TOWNSHIP))
        assert r.json()["status"] == "in_payment" and r.json()["stages"][0]["status"] == "ready"


async def test_p2_one_person_racing_in_two_roles_gets_one_signoff(pg_url: str) -> None:
    app = make_payments(pg_url)
    async with running(app) as c:
        await deliver(app, decision(amount="1000.00"))
        did = await only_disbursement(app)
        url = f"/v1/disbursements/{did}/signoffs"
        results = await asyncio.gather(*(
            c.post(url, json={}, headers=auth(role, TOWNSHIP, sub="same-person"))
            for role in ("township_office_director", "township_office_leader", "township_finance_leader")))
        assert sorted(r.status_code for r in results) == [201, 409, 409]
        assert await count(app, signoffs, signoffs.c.subject_type == "disbursement") == 1


async def test_p5_racing_payroll_runs_pay_each_beneficiary_once(pg_url: str) -> None:
    app = make_payments(pg_url)
    async with running(app) as c:
        await fund_county(c, "1000000.00")
        for seq in range(1, 41):
            await deliver(app, decision(program="dibao", amount=None, monthly="500.00", person_seq=seq))
        body = {"region_code": COUNTY, "month": "2026-11"}
        township = {"region_code": TOWNSHIP, "month": "2026-11"}
        results = await asyncio.gather(
            c.post("/v1/payroll-runs", json=body, headers=auth("county_finance")),
            c.post("/v1/payroll-runs", json=body, headers=auth("county_civil_affairs")),
            c.post("/v1/payroll-runs", json=township, headers=auth("county_finance")))
        assert sorted(r.status_code for r in results) == [200, 200, 201]
        assert sum(r.json()["new_payments"] for r in results) == 40
        assert await count(app, payments) == 40
        assert await balance(c, f"county_budget:{COUNTY}") == "980000.00"


async def test_two_deliveries_of_one_decision_make_one_payment(pg_url: str) -> None:
    """The same event twice at once (inbox), and the same decision under two event ids
    (deterministic disbursement id): one disbursement, one payment, one key at the bank."""
    bank = FakeBank()
    app = make_payments(pg_url, bank)
    async with running(app) as c:
        await fund_county(c)
        await allocate(c, "5000.00")
        d = decision(amount="700.00")
        consumer = app.state.runtime.consumers[0]
        same = message(d, event_id="11111111-1111-1111-1111-111111111111")
        await asyncio.gather(consumer.handle(same), consumer.handle(same),
                             consumer.handle(message(d)), consumer.handle(message(d)))
        assert await count(app, disbursements) == 1
        assert await count(app, payments) == 1
        assert await count(app, inbox) == 3
        dib = decision(program="dibao", amount=None, monthly="400.00", person_seq=2)
        await asyncio.gather(consumer.handle(message(dib)), consumer.handle(message(dib)))
        assert await count(app, entitlements) == 1
        await set_account(c, d.applicant_person_id)
        did = await only_disbursement(app)
        for role in ("township_office_director", "township_office_leader", "township_finance_leader"):
            await c.post(f"/v1/disbursements/{did}/signoffs", json={}, headers=auth(role, TOWNSHIP))
        await svc(app).payouts.dispatch_once()
        assert bank.paid == [f"{did}-1"]


async def test_two_senders_racing_send_each_payment_once(pg_url: str) -> None:
    """Two replicas dispatching at once: SKIP LOCKED gives each payment to one of them."""
    url = pg_url
    bank = FakeBank()
    first, second = make_payments(url, bank, bank_lease_s=60), make_payments(url, bank, bank_lease_s=60)
    async with running(first) as c, running(second):
        await fund_county(c, "1000000.00")
        for seq in range(1, 31):
            d = decision(program="dibao", amount=None, monthly="100.00", person_seq=seq)
            await deliver(first, d)
            await set_account(c, d.applicant_person_id)
        await c.post("/v1/payroll-runs", json={"region_code": COUNTY, "month": "2026-11"},
                     headers=auth("county_finance"))
        a, b = await asyncio.gather(svc(first).payouts.dispatch_once(), svc(second).payouts.dispatch_once())
        assert a.accepted + b.accepted == 30
        assert len(bank.keys()) == 30 and len(set(bank.keys())) == 30
        async with first.state.runtime.session_factory() as s:
            statuses = set((await s.execute(sa.select(payments.c.status))).scalars())
        assert statuses == {"paid"}
        assert await balance(c, f"bank_clearing:{COUNTY}") == "3000.00"
