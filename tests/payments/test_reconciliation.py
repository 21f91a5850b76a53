"""Reconciliation (对账): ledger, payments and bank confirmations agree, and every difference is listed."""
from __future__ import annotations

import sqlalchemy as sa

from services.payments import ledger
from services.payments.domain import ledger as dl
from services.payments.domain.reconciliation import PaymentFacts, differences
from services.payments.models import payment_attempts, payments
from services.payments.storage import today_shanghai, utcnow
from tests.payments.helpers import (
    FakeBank, assert_ledger_ok, allocate, decision, deliver, fund_county, make_payments, only_disbursement, key, person, set_account,
    sign_all, svc,
)
from tests.support import COUNTY, TOWNSHIP, auth, running


def test_each_kind_of_difference_is_named() -> None:
    facts = [PaymentFacts("ok", "paid", 100, [100], [], [100]),
             PaymentFacts("unbooked", "paid", 100, [], [], [100]),
             PaymentFacts("unconfirmed", "ready", 100, [100], [], []),
             PaymentFacts("amount", "paid", 100, [100], [], [90]),
             PaymentFacts("twice", "paid", 100, [100, 100], [], [100]),
             PaymentFacts("reversed", "paid", 100, [100, 100], [100], [100])]
    kinds = {(d.kind, d.payment_id) for d in differences(facts)}
    assert ("paid_not_booked", "unbooked") in kinds
    assert ("booked_not_confirmed", "unconfirmed") in kinds and ("status_mismatch", "unconfirmed") not in kinds
    assert ("amount_mismatch", "amount") in kinds
    assert ("duplicate_booking", "twice") in kinds and ("amount_mismatch", "twice") in kinds
    assert not {k for k in kinds if k[1] in ("ok", "reversed")}


async def _report(c, region: str = COUNTY, role: str = "county_finance"):
    today = today_shanghai().isoformat()
    return await c.get("/v1/reconciliation", params={"region_code": region, "from": today, "to": today},
                       headers=auth(role, region if role.startswith("township") else COUNTY))


async def test_reconciliation_agrees_after_normal_work_and_lists_every_tampered_difference(database_url: str) -> None:
    bank = FakeBank()
    app = make_payments(database_url, bank)
    async with running(app) as c:
        await fund_county(c, "100000.00")
        await allocate(c, "5000.00")
        d = decision(amount="900.00", person_seq=9)
        await deliver(app, d)
        await set_account(c, d.applicant_person_id)
        await sign_all(c, await only_disbursement(app))
        for seq in (1, 2, 3, 4):
            dd = decision(program="dibao", amount=None, monthly="500.00", person_seq=seq)
            await deliver(app, dd)
            await set_account(c, dd.applicant_person_id)
        # person 5 holds two dibao cases: paid twice for one month
        for _ in range(2):
            await deliver(app, decision(program="dibao", amount=None, monthly="300.00", person_seq=5))
        await set_account(c, person(5))
        r = await c.post("/v1/payroll-runs", json={"region_code": COUNTY, "month": "2026-11"},
                         headers=auth("county_finance"))
        assert r.json()["payments_created"] == 6
        # person 4's payment is kept back from the bank for tampering below
        async with app.state.runtime.session_factory() as s, s.begin():
            await s.execute(payments.update().where(payments.c.person_id == key(4)).values(status="awaiting_account"))
        await svc(app).payouts.dispatch_once()
        await assert_ledger_ok(c)
        clean = (await _report(c)).json()
        kinds = sorted({x["kind"] for x in clean["differences"]})
        assert kinds == ["duplicate_payment"]  # person 5's two cases, nothing else
        assert clean["totals"]["payments_paid"] == clean["totals"]["ledger_booked"] == clean["totals"]["bank_confirmed"]
        assert clean["totals"]["payments_paid"] == "3000.00"  # 900 + 3×500 + 2×300

        def sealed(i: int) -> str:
            return str(svc(app).payouts.accounts.seal(key(i), "6222")["account_enc"])

        async with app.state.runtime.session_factory() as s, s.begin():
            ids = dict((await s.execute(sa.select(payments.c.person_id, payments.c.id).where(
                payments.c.kind == "benefit"))).all())
            p1, p2, p3, p4 = (ids[key(i)] for i in (1, 2, 3, 4))
            # p1: the bank's confirmation is for a different amount
            await s.execute(payment_attempts.update().where(payment_attempts.c.payment_id == p1)
                            .values(confirmed_fen=49000))
            # p2: booked a second time
            await ledger.post(s, [dl.debit(dl.bank_clearing(COUNTY), 50000, p2),
                                  dl.credit(dl.payable(key(2)), 50000, p2)], kind="bank_paid", actor="tamper")
            # p3: the bank confirmed a second attempt
            await s.execute(payment_attempts.insert().values(
                payment_id=p3, attempt=2, idempotency_key=f"{p3}:2", account_enc=sealed(3), account_masked="****",
                amount_fen=50000,
                requested_at=utcnow(), sends=1, answered_at=utcnow(), outcome="accepted", confirmed_fen=50000))
            # p4: marked paid and confirmed, never booked
            await s.execute(payments.update().where(payments.c.id == p4).values(status="paid", paid_at=utcnow()))
            await s.execute(payment_attempts.insert().values(
                payment_id=p4, attempt=1, idempotency_key=p4, account_enc=sealed(4), account_masked="****",
                amount_fen=50000,
                requested_at=utcnow(), sends=1, answered_at=utcnow(), outcome="accepted", confirmed_fen=50000))
        report = (await _report(c)).json()
        found = {(x["kind"], x["payment_id"]) for x in report["differences"]}
        assert ("amount_mismatch", p1) in found
        assert ("duplicate_booking", p2) in found
        assert ("duplicate_confirmation", p3) in found
        assert ("paid_not_booked", p4) in found
        assert sum(1 for k, _ in found if k == "duplicate_payment") == 2
        assert report["balanced"] is False
        # a township sees its own region only; bad dates are a 422
        r = await _report(c, TOWNSHIP, "township_finance_leader")
        assert r.status_code == 200 and r.json()["payments_in_scope"] == report["payments_in_scope"]
        r = await _report(c, "522701002000", "township_finance_leader")
        assert r.status_code == 200 and r.json()["payments_in_scope"] == 0
        r = await c.get("/v1/reconciliation", params={"region_code": COUNTY, "from": "2026-12-01", "to": "2026-11-01"},
                        headers=auth("county_finance"))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "to"
        r = await c.get("/v1/reconciliation", params={"region_code": "522702000000", "from": "2026-11-01",
                                                      "to": "2026-11-30"}, headers=auth("county_finance"))
        assert r.status_code == 403
