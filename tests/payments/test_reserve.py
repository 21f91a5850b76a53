"""Township reserve funds: joint pre-allocation (P1), reimbursement and replenishment (P4),
资金趴窝 and 以拨代支 made visible (P4)."""
from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from services.payments.models import disbursements, ledger_transactions, reserve_allocations, signoffs
from services.payments.storage import today_shanghai
from tests.payments.helpers import (
    FakeBank, allocate, balance, count, decision, deliver, events, fund_county, make_payments,
    set_account, sign_all, svc,
)
from tests.support import COUNTY, TOWNSHIP, auth, running

RESERVE = f"reserve:{TOWNSHIP}"
BUDGET = f"county_budget:{COUNTY}"


async def _request(c, amount: str = "3000.00", township: str = TOWNSHIP, role: str = "county_finance"):
    return await c.post("/v1/reserve-allocations", json={"township_code": township, "amount": amount,
                                                         "reference": "黔南民财〔2026〕1号"}, headers=auth(role))


async def test_p1_pre_allocation_needs_both_county_roles_in_any_order_two_people(database_url: str) -> None:
    app = make_payments(database_url)
    async with running(app) as c:
        await fund_county(c, "10000.00")
        aid = (await _request(c)).json()["allocation_id"]
        url = f"/v1/reserve-allocations/{aid}/approvals"
        r = await c.post(url, json={"comment": "同意"}, headers=auth("county_finance", sub="zhou"))
        assert r.status_code == 201 and r.json()["status"] == "pending"
        assert r.json()["approvals_missing"] == ["county_civil_affairs"]
        assert await balance(c, RESERVE) == "0.00" and await balance(c, BUDGET) == "10000.00"
        same = await c.post(url, json={}, headers=auth("county_civil_affairs", sub="zhou"))
        assert same.status_code == 409  # one person cannot approve in both roles
        twice = await c.post(url, json={}, headers=auth("county_finance", sub="wu"))
        assert twice.status_code == 409  # county finance already approved
        township = await c.post(url, json={}, headers=auth("township_finance_leader", TOWNSHIP))
        assert township.status_code == 403
        r = await c.post(url, json={}, headers=auth("county_civil_affairs", sub="zheng"))
        assert r.status_code == 201 and r.json()["status"] == "approved"
        assert await balance(c, RESERVE) == "3000.00" and await balance(c, BUDGET) == "7000.00"
        assert (await c.post(url, json={}, headers=auth("county_civil_affairs", sub="feng"))).status_code == 409
        trail = (await c.get("/v1/audit", params={"entity_id": aid}, headers=auth("county_finance"))).json()["items"]
        assert {e["action"] for e in trail} == {"allocation.requested", "allocation.approved"}


async def test_p1_allocation_larger_than_the_budget_is_refused_and_nothing_changes(sqlite_url: str) -> None:
    app = make_payments(sqlite_url)
    async with running(app) as c:
        await fund_county(c, "1000.00")
        aid = (await _request(c, "3000.00")).json()["allocation_id"]
        url = f"/v1/reserve-allocations/{aid}/approvals"
        assert (await c.post(url, json={}, headers=auth("county_finance"))).status_code == 201
        r = await c.post(url, json={}, headers=auth("county_civil_affairs"))
        assert r.status_code == 409 and "1000.00" in r.json()["detail"]
        assert await count(app, signoffs, signoffs.c.subject_id == aid) == 1
        assert await balance(c, RESERVE) == "0.00" and await balance(c, BUDGET) == "1000.00"
        await fund_county(c, "5000.00")
        r = await c.post(url, json={}, headers=auth("county_civil_affairs"))
        assert r.status_code == 201 and r.json()["status"] == "approved"


async def test_reserve_bad_input_is_422_and_outside_region_403_or_404(sqlite_url: str) -> None:
    app = make_payments(sqlite_url)
    async with running(app) as c:
        await fund_county(c, "1000.00")
        before = await count(app, ledger_transactions)
        for body, field in (({"township_code": TOWNSHIP, "amount": "abc", "reference": "x"}, "amount"),
                            ({"township_code": TOWNSHIP, "amount": 12.5, "reference": "x"}, "amount"),
                            ({"township_code": TOWNSHIP, "amount": "0.00", "reference": "x"}, "amount"),
                            ({"township_code": TOWNSHIP, "amount": "1.005", "reference": "x"}, "amount"),
                            ({"township_code": COUNTY, "amount": "10.00", "reference": "x"}, "township_code"),
                            ({"township_code": TOWNSHIP, "amount": "10.00"}, "reference")):
            r = await c.post("/v1/reserve-allocations", json=body, headers=auth("county_finance"))
            assert r.status_code == 422, (body, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert field in [e["field"] for e in r.json()["errors"]]
        r = await c.post("/v1/budget-appropriations", json={"county_code": TOWNSHIP, "amount": "5", "reference": "x"},
                         headers=auth("county_finance"))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "county_code"
        assert (await _request(c, township="522702001000")).status_code == 403
        assert await count(app, reserve_allocations) == 0 and await count(app, ledger_transactions) == before
        aid = (await _request(c)).json()["allocation_id"]
        r = await c.get(f"/v1/reserve-allocations/{aid}", headers=auth("county_finance", "522702000000"))
        assert r.status_code == 404
        r = await c.post(f"/v1/reserve-allocations/{aid}/approvals", json={},
                         headers=auth("county_finance", "522702000000"))
        assert r.status_code == 404


async def _pay_out(app, c, amount: str) -> None:
    d = decision(amount=amount, person_seq=len(amount))
    await deliver(app, d)
    await set_account(c, d.applicant_person_id)
    async with app.state.runtime.session_factory() as s:
        did = (await s.execute(sa.select(disbursements.c.id).where(disbursements.c.decision_id == d.decision_id))
               ).scalar_one()
    await sign_all(c, did)
    assert (await svc(app).payouts.dispatch_once()).accepted == 1


async def test_p4_reimbursement_replenishes_and_unbacked_spending_is_visible_as_yi_bo_dai_zhi(database_url: str) -> None:
    """P4: a report backed by real payouts replenishes the reserve; a report claiming more than
    was paid out is 以拨代支 — shown in the figures and raised as payments.reserve.alert."""
    bank = FakeBank()
    app = make_payments(database_url, bank)
    today = today_shanghai()
    async with running(app) as c:
        await fund_county(c, "100000.00")
        await allocate(c, "5000.00")
        await _pay_out(app, c, "1200.00")
        assert await balance(c, RESERVE) == "3800.00"
        body = {"township_code": TOWNSHIP, "period_from": (today - timedelta(days=30)).isoformat(),
                "period_to": today.isoformat(), "amount": "1200.00", "note": "11月报账"}
        r = await c.post("/v1/reimbursements", json=body, headers=auth("county_finance"))
        assert r.status_code == 403  # the township files
        r = await c.post("/v1/reimbursements", json=body, headers=auth("township_finance_leader", TOWNSHIP))
        assert r.status_code == 201 and r.json()["backed_by_payouts"] == "1200.00" and r.json()["unbacked"] == "0.00"
        rid = r.json()["reimbursement_id"]
        overlap = await c.post("/v1/reimbursements", json=body, headers=auth("township_finance_leader", TOWNSHIP))
        assert overlap.status_code == 409
        assert (await c.post(f"/v1/reimbursements/{rid}/approval", json={},
                             headers=auth("county_civil_affairs"))).status_code == 403
        r = await c.post(f"/v1/reimbursements/{rid}/approval", json={"note": "核销"}, headers=auth("county_finance"))
        assert r.status_code == 200 and r.json()["status"] == "approved"
        assert await balance(c, RESERVE) == "5000.00"
        # a report for a later period with no payouts behind it
        later = {"township_code": TOWNSHIP, "period_from": (today + timedelta(days=1)).isoformat(),
                 "period_to": (today + timedelta(days=10)).isoformat(), "amount": "2000.00"}
        r = await c.post("/v1/reimbursements", json=later, headers=auth("township_finance_leader", TOWNSHIP))
        rid2 = r.json()["reimbursement_id"]
        assert r.json()["unbacked"] == "2000.00"
        await c.post(f"/v1/reimbursements/{rid2}/approval", json={}, headers=auth("county_finance"))
        fig = (await c.get(f"/v1/reserve-funds/{TOWNSHIP}", headers=auth("county_finance"))).json()
        assert fig["allocation_booked_as_spent"]["amount"] == "2000.00"
        assert fig["allocation_booked_as_spent"]["reports"] == [rid2]
        assert fig["paid_out"] == "1200.00" and fig["replenished"] == "3200.00" and fig["balance"] == "7000.00"
        r = await c.post("/v1/reserve-funds/scan", json={"today": today.isoformat()}, headers=auth("county_finance"))
        assert [a["kind"] for a in r.json()["alerts"]] == ["allocation_booked_as_spent"]
        r = await c.post("/v1/reserve-funds/scan", json={"today": today.isoformat()}, headers=auth("county_finance"))
        assert r.json()["alerts"] == []  # raised once
        alerts = await events(app, "payments.reserve.alert")
        assert [(a["township_code"], a["kind"], a["amount"]) for a in alerts] == [
            (TOWNSHIP, "allocation_booked_as_spent", "2000.00")]


async def test_p4_idle_money_zi_jin_pa_wo_is_visible_and_alerted_once(sqlite_url: str) -> None:
    app = make_payments(sqlite_url, reserve_idle_days=60)
    async with running(app) as c:
        await fund_county(c, "100000.00")
        await allocate(c, "5000.00")
        await allocate(c, "1000.00", township="522701002000")
        soon = today_shanghai() + timedelta(days=10)
        fig = (await c.get(f"/v1/reserve-funds/{TOWNSHIP}", params={"as_of": soon.isoformat()},
                           headers=auth("township_finance_leader", TOWNSHIP))).json()
        assert fig["idle_funds"]["amount"] == "0.00"
        idle_day = today_shanghai() + timedelta(days=61)
        funds = (await c.get("/v1/reserve-funds", params={"as_of": idle_day.isoformat()},
                             headers=auth("county_civil_affairs"))).json()
        assert {f["township_code"]: f["idle_funds"]["amount"] for f in funds} == {
            TOWNSHIP: "5000.00", "522701002000": "1000.00"}
        assert funds[0]["idle_funds"]["since"] == today_shanghai().isoformat()
        tick = await svc(app).tick(idle_day)
        assert sorted((a["township_code"], a["kind"]) for a in tick["reserve_alerts"]) == [
            ("522701001000", "idle_funds"), ("522701002000", "idle_funds")]
        assert (await svc(app).tick(idle_day + timedelta(days=1)))["reserve_alerts"] == []
        # a township sees only its own reserve
        mine = (await c.get("/v1/reserve-funds", headers=auth("township_finance_leader", TOWNSHIP))).json()
        assert [f["township_code"] for f in mine] == [TOWNSHIP]
        assert (await c.get("/v1/reserve-funds/522701002000",
                            headers=auth("township_finance_leader", TOWNSHIP))).status_code == 404


async def test_p4_spending_ages_idle_lots_first_in_first_out(sqlite_url: str) -> None:
    bank = FakeBank()
    app = make_payments(sqlite_url, bank, reserve_idle_days=30)
    async with running(app) as c:
        await fund_county(c, "100000.00")
        await allocate(c, "1000.00")
        await _pay_out(app, c, "400.00")
        fig = (await c.get(f"/v1/reserve-funds/{TOWNSHIP}",
                           params={"as_of": (date.today() + timedelta(days=45)).isoformat()},
                           headers=auth("county_finance"))).json()
        assert fig["idle_funds"]["amount"] == "600.00" and fig["balance"] == "600.00"
