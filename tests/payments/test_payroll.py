"""P5 monthly payroll for 低保/特困, price subsidies, and stops on death (M6)."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from services.payments.models import entitlements, ledger_entries, payment_recoveries, payments
from shared.messaging.tables import outbox
from tests.payments.helpers import (
    FakeBank, assert_ledger_ok, balance, benefit_changed, count, decision, deliver, died, events, fund_county, make_payments, key, person,
    set_account, svc,
)
from tests.support import COUNTY, TOWNSHIP, auth, running

BUDGET = f"county_budget:{COUNTY}"


def dibao(seq: int, monthly: str = "800.00", **kw):
    return decision(program="dibao", amount=None, monthly=monthly, person_seq=seq, **kw)


async def _run(c, month: str, region: str = COUNTY, role: str = "county_civil_affairs"):
    return await c.post("/v1/payroll-runs", json={"region_code": region, "month": month}, headers=auth(role))


async def _amounts(app, month: date, kind: str = "benefit") -> dict[str, int]:
    async with app.state.runtime.session_factory() as s:
        rows = (await s.execute(sa.select(payments.c.person_id, payments.c.amount_fen, payments.c.status).where(
            payments.c.month == month, payments.c.kind == kind))).all()
        # the rows hold person keys; the vault gives the numbers back
        numbers = await svc(app).payroll.persons.reveal(s, [r.person_id for r in rows])
    assert len(numbers) == len({r.person_id for r in rows})
    return {numbers[r.person_id]: (int(r.amount_fen), r.status) for r in rows}


async def test_p5_run_pays_each_beneficiary_once_and_a_rerun_adds_only_the_missing(database_url: str) -> None:
    app = make_payments(database_url)
    async with running(app) as c:
        await fund_county(c, "10000.00")
        await deliver(app, dibao(1, "800.00"))
        await deliver(app, decision(program="tekun", amount=None, monthly="1300.00", person_seq=2))
        r = await _run(c, "2026-11")
        assert r.status_code == 201, r.text
        assert r.json()["payments_created"] == 2 and r.json()["total"] == "2100.00"
        assert await balance(c, BUDGET) == "7900.00"
        assert await balance(c, f"payable:{key(1)}") == "800.00"
        again = await _run(c, "2026-11", role="county_finance")
        assert again.status_code == 200 and again.json()["new_payments"] == 0
        await deliver(app, dibao(3, "500.00"))  # approved after the run: a re-run adds only them
        third = await _run(c, "2026-11")
        assert third.status_code == 201 and third.json()["payments_created"] == 1
        assert await count(app, payments) == 3
        assert await balance(c, BUDGET) == "7400.00"
        completed = await events(app, "payments.payroll.completed")
        assert [(e["payments_created"], e["total_amount"]) for e in completed] == [(2, "2100.00"), (1, "500.00")]
        # every run's ledger transaction is balanced
        async with app.state.runtime.session_factory() as s:
            signed = sa.case((ledger_entries.c.side == "D", ledger_entries.c.amount_fen), else_=-ledger_entries.c.amount_fen)
            sums = (await s.execute(sa.select(ledger_entries.c.transaction_id, sa.func.sum(signed))
                                    .group_by(ledger_entries.c.transaction_id))).all()
        assert sums and all(total == 0 for _, total in sums)
        r = await c.get("/v1/payroll-runs", params={"month": "2026-11"}, headers=auth("county_finance"))
        assert len(r.json()) == 2


async def test_p5_insufficient_budget_refuses_the_whole_run_and_changes_nothing(database_url: str) -> None:
    app = make_payments(database_url)
    async with running(app) as c:
        await fund_county(c, "1000.00")
        await deliver(app, dibao(1, "800.00"))
        await deliver(app, dibao(2, "800.00"))
        before = await count(app, outbox)
        r = await _run(c, "2026-11")
        assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
        assert "1000.00" in r.json()["detail"]
        assert await count(app, payments) == 0 and await count(app, outbox) == before
        assert await balance(c, BUDGET) == "1000.00"


async def test_p5_bad_input_is_422_naming_fields_and_changes_nothing(sqlite_url: str) -> None:
    app = make_payments(sqlite_url)
    async with running(app) as c:
        await fund_county(c, "1000.00")
        await deliver(app, dibao(1))
        for body, field in (({"region_code": COUNTY, "month": "2026-13"}, "month"),
                            ({"region_code": "5227", "month": "2026-11"}, "region_code"),
                            ({"region_code": "522700000000", "month": "2026-11"}, "region_code"),
                            ({"month": "2026-11"}, "region_code"),
                            ({"region_code": COUNTY, "month": "2026-11", "extra": 1}, "extra")):
            r = await c.post("/v1/payroll-runs", json=body, headers=auth("county_finance"))
            assert r.status_code == 422, body
            assert r.headers["content-type"] == "application/problem+json"
            assert field in [e["field"] for e in r.json()["errors"]], r.json()
        r = await c.post("/v1/price-subsidy-runs", json={"region_code": COUNTY, "month": "2026-11",
                                                         "amount_per_person": "-5"}, headers=auth("county_finance"))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "amount_per_person"
        assert (await _run(c, "2026-11", region="522702000000")).status_code == 403
        assert (await _run(c, "2026-11", role="township_finance_leader")).status_code == 403
        assert await count(app, payments) == 0
        assert await balance(c, BUDGET) == "1000.00"


async def test_p5_price_subsidy_is_its_own_kind_per_person_covered(sqlite_url: str) -> None:
    app = make_payments(sqlite_url)
    async with running(app) as c:
        await fund_county(c, "10000.00")
        await deliver(app, dibao(1, "800.00", covered=[person(1), person(11)]))
        await deliver(app, dibao(2, "600.00"))
        assert (await _run(c, "2026-11")).status_code == 201
        r = await c.post("/v1/price-subsidy-runs", json={"region_code": COUNTY, "month": "2026-11",
                                                         "amount_per_person": "50.00"}, headers=auth("county_finance"))
        assert r.status_code == 201 and r.json()["kind"] == "price_subsidy" and r.json()["total"] == "150.00"
        assert await _amounts(app, date(2026, 11, 1), "price_subsidy") == {
            person(1): (10000, "ready"), person(2): (5000, "ready")}
        r = await c.post("/v1/price-subsidy-runs", json={"region_code": COUNTY, "month": "2026-11",
                                                         "amount_per_person": "50.00"}, headers=auth("county_finance"))
        assert r.status_code == 200 and await count(app, payments) == 4


async def test_d5_gradual_exit_and_benefit_changes_shape_the_months(sqlite_url: str) -> None:
    """D5: a gradual exit of 2 months from 2026-11-01 pays Nov and Dec only; a raise from December
    changes December on; a stop from 2027-01-01 ends it."""
    app = make_payments(sqlite_url)
    async with running(app) as c:
        await fund_county(c, "100000.00")
        await deliver(app, dibao(1, "800.00", outcome="gradual_exit", exit_months=2))
        raised = dibao(2, "500.00")
        await deliver(app, raised)
        await deliver(app, benefit_changed(raised.case_id, change="raise", person_seq=2, new="650.00",
                                           effective_from=date(2026, 12, 1)))
        exiting = dibao(3, "300.00")  # re-evaluated into a gradual exit whose last day is 2027-01-31
        await deliver(app, exiting)
        await deliver(app, benefit_changed(exiting.case_id, change="gradual_exit", person_seq=3, new="300.00",
                                           effective_from=date(2026, 8, 1), exit_until=date(2027, 1, 31)))
        for month in ("2026-11", "2026-12", "2027-01", "2027-02"):
            assert (await _run(c, month)).status_code in (200, 201)
        assert await _amounts(app, date(2026, 11, 1)) == {
            person(1): (80000, "ready"), person(2): (50000, "ready"), person(3): (30000, "ready")}
        assert await _amounts(app, date(2026, 12, 1)) == {
            person(1): (80000, "ready"), person(2): (65000, "ready"), person(3): (30000, "ready")}
        assert await _amounts(app, date(2027, 1, 1)) == {person(2): (65000, "ready"), person(3): (30000, "ready")}
        # a stop from February cancels the unsent February payment and its earmark
        before = await balance(c, BUDGET)
        await deliver(app, benefit_changed(raised.case_id, change="stop", person_seq=2, effective_from=date(2027, 2, 1)))
        assert await _amounts(app, date(2027, 2, 1)) == {person(2): (65000, "suspended")}
        after = await balance(c, BUDGET)
        assert float(after) - float(before) == 650.0
        assert (await _run(c, "2027-03")).status_code == 200


async def test_p5_m6_death_stops_future_payments_and_flags_paid_ones_for_recovery(database_url: str) -> None:
    """P5/M6: a death suspends the person's unsent payments at once (earmark reversed) and flags a
    payment for a month after the death with payments.payment.recovery_flagged and a receivable."""
    bank = FakeBank()
    app = make_payments(database_url, bank)
    async with running(app) as c:
        await fund_county(c, "100000.00")
        d = dibao(1, "800.00")
        await deliver(app, d)
        await set_account(c, d.applicant_person_id)
        for month in ("2026-11", "2026-12"):
            assert (await _run(c, month)).status_code == 201
        await svc(app).payouts.dispatch_once()  # Nov and Dec paid (Dec paid in advance)
        assert (await _run(c, "2027-01")).status_code == 201  # January: earmarked, not sent
        budget_before = await balance(c, BUDGET)
        await deliver(app, died(1, date(2026, 11, 20)), source="monitoring")
        assert await _amounts(app, date(2027, 1, 1)) == {person(1): (80000, "suspended")}
        assert await _amounts(app, date(2026, 11, 1)) == {person(1): (80000, "paid")}  # alive in November
        assert float(await balance(c, BUDGET)) - float(budget_before) == 800.0  # January's earmark returned
        flagged = await events(app, "payments.payment.recovery_flagged")
        assert [(e["amount"], e["date_of_death"]) for e in flagged] == [("800.00", "2026-11-20")]
        assert await count(app, payment_recoveries) == 1
        assert await balance(c, f"recovery_receivable:{key(1)}") == "800.00"
        assert await balance(c, f"recoveries:{COUNTY}") == "800.00"
        async with app.state.runtime.session_factory() as s:
            status = (await s.execute(sa.select(entitlements.c.status).where(entitlements.c.id == d.case_id))).scalar_one()
        assert status == "suspended"
        assert (await _run(c, "2027-02")).status_code == 200  # nobody left to pay
        # the same death reported twice changes nothing more
        await deliver(app, died(1, date(2026, 11, 20)), source="monitoring")
        assert len(await events(app, "payments.payment.recovery_flagged")) == 1
        await assert_ledger_ok(c)
        r = await c.get(f"/v1/beneficiaries/{person(1)}", headers=auth("county_civil_affairs"))
        assert r.json()["date_of_death"] == "2026-11-20" and r.json()["entitlements"][0]["status"] == "suspended"


async def test_p5_payment_in_flight_at_death_is_flagged_when_the_bank_confirms(sqlite_url: str) -> None:
    bank = FakeBank(mode="timeout")
    app = make_payments(sqlite_url, bank)
    async with running(app) as c:
        await fund_county(c, "100000.00")
        d = dibao(1, "800.00")
        await deliver(app, d)
        await set_account(c, d.applicant_person_id)
        assert (await _run(c, "2026-12")).status_code == 201
        assert (await svc(app).payouts.dispatch_once()).unknown == 1  # outcome unknown: may be paid
        await deliver(app, died(1, date(2026, 11, 5)), source="monitoring")
        assert await _amounts(app, date(2026, 12, 1)) == {person(1): (80000, "unknown")}  # never cancelled in flight
        bank.mode = "ok"
        from datetime import timedelta
        from services.payments.storage import utcnow
        assert (await svc(app).payouts.dispatch_once(now=utcnow() + timedelta(hours=1))).accepted == 1
        assert len(await events(app, "payments.payment.recovery_flagged")) == 1


async def test_linshi_payee_death_suspends_unpaid_stages(sqlite_url: str) -> None:
    from tests.payments.helpers import allocate, only_disbursement, sign_all
    app = make_payments(sqlite_url)
    async with running(app) as c:
        await fund_county(c)
        await allocate(c, "5000.00")
        await deliver(app, decision(amount="900.00", staged=["300.00", "300.00", "300.00"]))
        did = await only_disbursement(app)
        await sign_all(c, did)
        assert await balance(c, f"reserve:{TOWNSHIP}") == "4700.00"
        await deliver(app, died(1, date(2026, 11, 2)), source="monitoring")
        r = await c.get(f"/v1/disbursements/{did}", headers=auth("township_clerk", TOWNSHIP))
        assert r.json()["status"] == "suspended" and {s["status"] for s in r.json()["stages"]} == {"suspended"}
        assert await balance(c, f"reserve:{TOWNSHIP}") == "5000.00"
