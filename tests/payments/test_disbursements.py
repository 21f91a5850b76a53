"""Temporary-assistance payouts: three sign-offs (P2), reserve or county budget (L4), staged
payments and 先行救助 (L4), the 5-working-day limit (P3)."""
from __future__ import annotations

import itertools
from datetime import date, datetime, timezone

import pytest
from prometheus_client import REGISTRY

from services.payments.models import payment_clocks, payments, signoffs
from tests.payments.helpers import (
    SIGNERS, FakeBank, allocate, balance, count, decision, deliver, events, fund_county, make_payments,
    only_disbursement, person, set_account, sign_all, svc,
)
from tests.support import COUNTY, OTHER_COUNTY, TOWNSHIP, auth, running

RESERVE = f"reserve:{TOWNSHIP}"


async def test_p2_three_signoffs_money_moves_only_after_the_third(database_url: str) -> None:
    """P2: director, leader and finance leader sign (three people); the reserve is drawn only
    after the third; each sign-off is audited with who, role and when."""
    app = make_payments(database_url)
    async with running(app) as c:
        await fund_county(c)
        await allocate(c, "5000.00")
        await deliver(app, decision(amount="1200.00"))
        did = await only_disbursement(app)
        r = await c.get(f"/v1/disbursements/{did}", headers=auth("township_clerk", TOWNSHIP))
        assert r.status_code == 200 and r.json()["status"] == "awaiting_signoffs"
        assert r.json()["funded_from"] == "township_reserve" and r.json()["amount"] == "1200.00"
        for i, role in enumerate(SIGNERS):
            assert await balance(c, RESERVE) == "5000.00"  # nothing moved yet
            r = await c.post(f"/v1/disbursements/{did}/signoffs", json={"comment": f"第{i + 1}签"},
                             headers=auth(role, TOWNSHIP))
            assert r.status_code == 201, r.text
        body = r.json()
        assert body["signoffs_missing"] == [] and [s["role"] for s in body["signoffs"]] == list(SIGNERS)
        assert all(s["signer"]["sub"] and s["signed_at"] for s in body["signoffs"])
        assert body["status"] == "in_payment" and body["stages"][0]["status"] == "ready"
        assert await balance(c, RESERVE) == "3800.00"
        r = await c.get("/v1/audit", params={"entity_id": did}, headers=auth("county_finance"))
        actions = [(e["action"], e["actor_role"]) for e in r.json()["items"]]
        assert sorted(actions) == sorted(("disbursement.signed", role) for role in SIGNERS)


@pytest.mark.parametrize("order", list(itertools.permutations(SIGNERS)))
async def test_p2_signoffs_in_any_order(sqlite_url: str, order) -> None:
    """P2: the order of the three sign-offs does not matter."""
    app = make_payments(sqlite_url)
    async with running(app) as c:
        await fund_county(c)
        await allocate(c, "2000.00")
        await deliver(app, decision(amount="500.00"))
        did = await only_disbursement(app)
        r = await sign_all(c, did, order)
        assert r.json()["status"] == "in_payment"
        assert await balance(c, RESERVE) == "1500.00"


async def test_p2_same_person_twice_or_in_two_roles_is_409_and_wrong_role_403(database_url: str) -> None:
    app = make_payments(database_url)
    async with running(app) as c:
        await fund_county(c)
        await allocate(c, "2000.00")
        await deliver(app, decision(amount="500.00"))
        did = await only_disbursement(app)
        url = f"/v1/disbursements/{did}/signoffs"
        assert (await c.post(url, json={}, headers=auth("township_office_director", TOWNSHIP, sub="wang"))).status_code == 201
        again = await c.post(url, json={}, headers=auth("township_office_director", TOWNSHIP, sub="wang"))
        assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
        other_role = await c.post(url, json={}, headers=auth("township_office_leader", TOWNSHIP, sub="wang"))
        assert other_role.status_code == 409 and "already signed" in other_role.json()["detail"]
        same_role = await c.post(url, json={}, headers=auth("township_office_director", TOWNSHIP, sub="li"))
        assert same_role.status_code == 409
        clerk = await c.post(url, json={}, headers=auth("township_clerk", TOWNSHIP))
        assert clerk.status_code == 403
        county_role = await c.post(url, json={}, headers=auth("county_finance"))
        assert county_role.status_code == 403  # a township payout needs the township roles
        outside = await c.post(url, json={}, headers=auth("township_office_leader", "522702001000"))
        assert outside.status_code == 404
        assert await count(app, signoffs, signoffs.c.subject_type == "disbursement") == 1
        assert await balance(c, RESERVE) == "2000.00"


async def test_l4_county_level_needs_civil_affairs_and_finance_and_draws_the_county_budget(database_url: str) -> None:
    """L4: above the township limit the county decides; our choice: county civil affairs + county
    finance sign (two people) and the money comes from the county budget."""
    app = make_payments(database_url)
    async with running(app) as c:
        await fund_county(c, "10000.00")
        await deliver(app, decision(amount="3000.00", level="county"))
        did = await only_disbursement(app)
        url = f"/v1/disbursements/{did}/signoffs"
        assert (await c.post(url, json={}, headers=auth("township_office_director", TOWNSHIP))).status_code == 403
        assert (await c.post(url, json={}, headers=auth("county_finance", sub="zhao"))).status_code == 201
        assert (await c.post(url, json={}, headers=auth("county_civil_affairs", sub="zhao"))).status_code == 409
        assert await balance(c, f"county_budget:{COUNTY}") == "10000.00"
        r = await c.post(url, json={}, headers=auth("county_civil_affairs", sub="qian"))
        assert r.status_code == 201 and r.json()["funded_from"] == "county_budget"
        assert await balance(c, f"county_budget:{COUNTY}") == "7000.00"


async def test_p1_p4_payout_waits_for_funds_then_is_paid_when_the_reserve_is_topped_up(database_url: str) -> None:
    """A reserve never goes negative: the payout waits in awaiting_funds (visible) and is earmarked
    when a pre-allocation arrives."""
    app = make_payments(database_url)
    async with running(app) as c:
        await fund_county(c)
        await allocate(c, "100.00")
        await deliver(app, decision(amount="800.00"))
        did = await only_disbursement(app)
        r = await sign_all(c, did)
        assert r.json()["status"] == "awaiting_funds"
        assert await balance(c, RESERVE) == "100.00"
        r = await c.get(f"/v1/reserve-funds/{TOWNSHIP}", headers=auth("township_finance_leader", TOWNSHIP))
        assert r.json()["awaiting_funds"] == {"count": 1, "amount": "800.00"}
        listed = await c.get("/v1/disbursements", params={"status": "awaiting_funds"},
                             headers=auth("township_clerk", TOWNSHIP))
        assert [d["disbursement_id"] for d in listed.json()] == [did]
        await allocate(c, "1000.00")
        r = await c.get(f"/v1/disbursements/{did}", headers=auth("township_clerk", TOWNSHIP))
        assert r.json()["status"] == "in_payment" and r.json()["stages"][0]["status"] == "ready"
        assert await balance(c, RESERVE) == "300.00"


async def test_l4_staged_payments_one_approval_several_payments(sqlite_url: str) -> None:
    """L4 一次审批、分阶段救助: one set of sign-offs; stage 1 now, the others a month apart."""
    bank = FakeBank()
    app = make_payments(sqlite_url, bank)
    async with running(app) as c:
        await fund_county(c)
        await allocate(c, "5000.00")
        d = decision(amount="1500.00", staged=["500.00", "500.00", "500.00"])
        await deliver(app, d)
        did = await only_disbursement(app)
        await set_account(c, d.applicant_person_id)
        r = await sign_all(c, did)
        stages = r.json()["stages"]
        assert [s["status"] for s in stages] == ["ready", "scheduled", "scheduled"]
        assert await balance(c, RESERVE) == "4500.00"
        await svc(app).payouts.dispatch_once()
        later = date.fromisoformat(stages[2]["release_on"])
        tick = await svc(app).tick(later)
        assert tick["released"] == 2
        await svc(app).payouts.dispatch_once()
        r = await c.get(f"/v1/disbursements/{did}", headers=auth("township_clerk", TOWNSHIP))
        assert r.json()["status"] == "paid" and [s["status"] for s in r.json()["stages"]] == ["paid"] * 3
        assert len(bank.paid) == 3
        paid = await events(app, "payments.disbursement.paid")  # one per stage: intake closes with the last
        assert [(e["amount"], e["within_time_limit"]) for e in paid] == [("500.00", True)] * 3


async def test_l4_pay_first_pays_before_the_file_is_complete_and_lists_it(sqlite_url: str) -> None:
    """先行救助: paid right after the sign-offs; documents_complete stays false until a clerk marks it."""
    bank = FakeBank()
    app = make_payments(sqlite_url, bank)
    async with running(app) as c:
        await fund_county(c)
        await allocate(c, "5000.00")
        d = decision(amount="700.00", pay_first=True)
        await deliver(app, d)
        await deliver(app, decision(amount="300.00", person_seq=2))
        did = next(x["disbursement_id"] for x in (await c.get("/v1/disbursements", headers=auth("township_clerk", TOWNSHIP))).json()
                   if x["pay_first"])
        await set_account(c, d.applicant_person_id)
        await sign_all(c, did)
        await svc(app).payouts.dispatch_once()
        r = await c.get("/v1/disbursements", params={"documents_complete": "false"}, headers=auth("township_clerk", TOWNSHIP))
        assert [(x["disbursement_id"], x["status"]) for x in r.json()] == [(did, "paid")]
        r = await c.post(f"/v1/disbursements/{did}/documents-complete", json={"note": "补齐"},
                         headers=auth("township_clerk", TOWNSHIP))
        assert r.status_code == 200 and r.json()["documents_complete"] is True
        r = await c.get("/v1/disbursements", params={"documents_complete": "false"}, headers=auth("township_clerk", TOWNSHIP))
        assert r.json() == []


def _breaches() -> float:
    return REGISTRY.get_sample_value("deadline_breaches_total", {"service": "payments", "kind": "P3"}) or 0.0


async def test_p3_deadline_across_national_day_2026_at_risk_then_breached(sqlite_url: str) -> None:
    """P3 on the official calendar: accepted Tue 2026-09-29; National Day 10-01..10-07 is off,
    Sat 10-10 is a make-up working day, so the 5th working day is Mon 2026-10-12."""
    app = make_payments(sqlite_url)
    accepted = datetime(2026, 9, 29, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
    async with running(app) as c:
        await deliver(app, decision(amount="600.00", received_at=accepted))
        did = await only_disbursement(app)
        r = await c.get(f"/v1/disbursements/{did}", headers=auth("township_clerk", TOWNSHIP))
        assert r.json()["pay_by"] == "2026-10-12"
        clocks = svc(app).clocks
        assert await clocks.scan(date(2026, 9, 30)) == []          # 4 working days left
        assert await clocks.scan(date(2026, 10, 7)) == []          # holiday: still 4 left
        assert await clocks.scan(date(2026, 10, 9)) == []          # 10-10 and 10-12 left
        risk = await clocks.scan(date(2026, 10, 10))               # the make-up Saturday: one left
        assert [x["state"] for x in risk] == ["at_risk"]
        assert await clocks.scan(date(2026, 10, 11)) == []         # reported once
        before = _breaches()
        breached = await clocks.scan(date(2026, 10, 13))
        assert [x["state"] for x in breached] == ["breached"] and _breaches() == before + 1
        sent = await events(app, "payments.disbursement.deadline")
        assert [(e["state"], e["pay_by"], e["disbursement_id"]) for e in sent] == [
            ("at_risk", "2026-10-12", did), ("breached", "2026-10-12", did)]
        r = await c.get("/v1/payment-deadlines", params={"state": "breached", "today": "2026-10-13"},
                        headers=auth("township_office_director", TOWNSHIP))
        assert [x["case_id"] for x in r.json()] == [await _case(app)]
        r = await c.get("/v1/disbursements", params={"deadline": "at_risk"}, headers=auth("township_clerk", TOWNSHIP))
        assert r.status_code == 200


async def _case(app) -> str:
    import sqlalchemy as sa
    async with app.state.runtime.session_factory() as s:
        return (await s.execute(sa.select(payment_clocks.c.case_id))).scalar_one()


async def test_p3_paid_in_time_stops_the_clock_and_reports_within_limit(sqlite_url: str) -> None:
    bank = FakeBank()
    app = make_payments(sqlite_url, bank)
    async with running(app) as c:
        await fund_county(c)
        await allocate(c, "5000.00")
        d = decision(amount="900.00")
        await deliver(app, d)
        did = await only_disbursement(app)
        await set_account(c, d.applicant_person_id)
        await sign_all(c, did)
        stats = await svc(app).payouts.dispatch_once()
        assert stats.accepted == 1
        paid = await events(app, "payments.disbursement.paid")
        assert len(paid) == 1 and paid[0]["within_time_limit"] is True and paid[0]["amount"] == "900.00"
        assert paid[0]["funded_from"] == "township_reserve"
        r = await c.get(f"/v1/cases/{d.case_id}/payment-deadline", headers=auth("township_clerk", TOWNSHIP))
        assert r.status_code == 200 and r.json()["paid_at"] is not None
        assert await svc(app).clocks.scan(date(2030, 1, 1)) == []
        r = await c.get(f"/v1/cases/{d.case_id}/payment-deadline", headers=auth("township_clerk", OTHER_COUNTY))
        assert r.status_code == 404


async def test_denied_decision_closes_the_clock_and_creates_nothing(sqlite_url: str) -> None:
    app = make_payments(sqlite_url)
    async with running(app) as c:
        await deliver(app, decision(outcome="denied", amount=None))
        assert await count(app, payments) == 0
        assert await svc(app).clocks.scan(date(2030, 1, 1)) == []
        r = await c.get("/v1/disbursements", headers=auth("township_clerk", TOWNSHIP))
        assert r.json() == []


async def test_inconsistent_staged_payments_are_dead_lettered_not_paid(sqlite_url: str) -> None:
    from shared.messaging.tables import dead_letters
    app = make_payments(sqlite_url)
    async with running(app):
        await deliver(app, decision(amount="1000.00", staged=["300.00", "300.00"]))
        assert await count(app, payments) == 0
        assert await count(app, dead_letters) == 1


async def test_person_id_masked_for_readers_outside_the_case_roles(sqlite_url: str) -> None:
    app = make_payments(sqlite_url)
    async with running(app) as c:
        await deliver(app, decision(amount="100.00"))
        did = await only_disbursement(app)
        full = (await c.get(f"/v1/disbursements/{did}", headers=auth("township_clerk", TOWNSHIP))).json()
        masked = (await c.get(f"/v1/disbursements/{did}", headers=auth("monitoring_operator", TOWNSHIP))).json()
        assert full["person_id"] == person(1) and masked["person_id"] != person(1)
