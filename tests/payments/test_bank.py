"""The bank adapter: idempotency keys, unknown outcomes re-sent with the SAME key, rejections
returned to their source and retried after the account is corrected, crash safety."""
from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa

from services.payments.bank import BankPayment, BankResult, HttpBank, interpret
from services.payments.models import payment_attempts, payments
from services.payments.storage import utcnow
from tests.payments.helpers import (
    BANK_URL, FakeBank, assert_ledger_ok, allocate, balance, count, decision, deliver, fund_county, make_payments, only_disbursement,
    set_account, sign_all, svc,
)
from tests.support import COUNTY, TOWNSHIP, auth, eventually, running

RESERVE = f"reserve:{TOWNSHIP}"
CLEARING = f"bank_clearing:{COUNTY}"


async def _ready_payout(app, c, *, amount: str = "800.00", account: str | None = "6222020200112233445") -> str:
    await fund_county(c)
    await allocate(c, "5000.00")
    d = decision(amount=amount)
    await deliver(app, d)
    did = await only_disbursement(app)
    if account:
        assert (await set_account(c, d.applicant_person_id, account)).status_code == 200
    await sign_all(c, did)
    return f"{did}-1"


async def test_accepted_payment_books_clearing_once_with_the_payment_id_as_key(sqlite_url: str) -> None:
    bank = FakeBank()
    app = make_payments(sqlite_url, bank)
    async with running(app) as c:
        pid = await _ready_payout(app, c)
        stats = await svc(app).payouts.dispatch_once()
        assert (stats.claimed, stats.accepted) == (1, 1)
        assert bank.keys() == [pid] and bank.paid == [pid]
        assert await balance(c, CLEARING) == "800.00" and await balance(c, RESERVE) == "4200.00"
        again = await svc(app).payouts.dispatch_once()
        assert again.claimed == 0 and bank.keys() == [pid]


async def test_rejection_returns_the_money_then_retry_after_the_account_is_corrected(database_url: str) -> None:
    """A closed account: the money goes back to the reserve by a return transaction, the payment
    stays visible as rejected; PATCHing the account makes attempt 2 (key "<id>:2") which pays."""
    bank = FakeBank(closed_accounts={"6222000000000000001"})
    app = make_payments(database_url, bank)
    async with running(app) as c:
        pid = await _ready_payout(app, c, account="6222000000000000001")
        stats = await svc(app).payouts.dispatch_once()
        assert stats.rejected == 1
        assert await balance(c, RESERVE) == "5000.00" and await balance(c, CLEARING) == "0.00"
        r = await c.get(f"/v1/payments/{pid}", headers=auth("township_finance_leader", TOWNSHIP))
        body = r.json()
        assert body["status"] == "rejected" and body["reject_reason"] == "account_closed"
        assert body["attempts"][0]["outcome"] == "rejected" and body["attempts"][0]["idempotency_key"] == pid
        r = await c.get(f"/v1/disbursements/{pid[:-2]}", headers=auth("township_clerk", TOWNSHIP))
        assert r.json()["status"] == "rejected"
        r = await c.get("/v1/ledger/accounts/" + RESERVE + "/entries", headers=auth("county_finance"))
        assert [e["kind"] for e in r.json()["entries"]][:2] == ["bank_returned", "earmark"]
        # nothing is re-sent until the account is corrected
        assert (await svc(app).payouts.dispatch_once()).claimed == 0
        person_id = body["person_id"]
        r = await set_account(c, person_id, "6222000000000000002")
        assert r.status_code == 200 and r.json()["payments_retried"] == 1
        assert await balance(c, RESERVE) == "4200.00"
        stats = await svc(app).payouts.dispatch_once()
        assert stats.accepted == 1
        assert bank.keys() == [pid, f"{pid}:2"] and bank.paid == [f"{pid}:2"]
        r = await c.get(f"/v1/payments/{pid}", headers=auth("township_finance_leader", TOWNSHIP))
        assert r.json()["status"] == "paid" and [a["attempt"] for a in r.json()["attempts"]] == [1, 2]
        assert await balance(c, CLEARING) == "800.00" and await balance(c, RESERVE) == "4200.00"
        await assert_ledger_ok(c)


async def test_timeout_and_5xx_are_unknown_and_resent_with_the_same_key(sqlite_url: str) -> None:
    bank = FakeBank(mode="timeout")
    app = make_payments(sqlite_url, bank)
    async with running(app) as c:
        pid = await _ready_payout(app, c)
        assert (await svc(app).payouts.dispatch_once()).unknown == 1
        r = await c.get(f"/v1/payments/{pid}", headers=auth("township_clerk", TOWNSHIP))
        assert r.json()["status"] == "unknown" and "timeout" in r.json()["last_error"]
        assert (await svc(app).payouts.dispatch_once()).claimed == 0  # backing off
        bank.mode = "5xx"
        later = utcnow() + timedelta(hours=1)
        assert (await svc(app).payouts.dispatch_once(now=later)).unknown == 1
        bank.mode = "ok"
        assert (await svc(app).payouts.dispatch_once(now=later + timedelta(hours=1))).accepted == 1
        assert bank.keys() == [pid, pid, pid] and bank.paid == [pid]
        assert await count(app, payment_attempts) == 1
        assert await balance(c, CLEARING) == "800.00"


async def test_answer_lost_after_the_bank_paid_is_not_paid_twice(sqlite_url: str) -> None:
    """The bank paid but its answer timed out: the re-send with the same key gets the first answer."""
    bank = FakeBank(mode="answer_after_timeout")
    app = make_payments(sqlite_url, bank)
    async with running(app) as c:
        pid = await _ready_payout(app, c)
        assert (await svc(app).payouts.dispatch_once()).unknown == 1
        bank.mode = "ok"
        assert (await svc(app).payouts.dispatch_once(now=utcnow() + timedelta(hours=1))).accepted == 1
        assert bank.keys() == [pid, pid] and bank.paid == [pid]
        assert await balance(c, CLEARING) == "800.00"


class Crash(BaseException):
    """The process dies: nothing after this point runs."""


class CrashAfterCall:
    def __init__(self, inner: HttpBank) -> None:
        self.inner = inner

    async def send(self, payment: BankPayment) -> BankResult:
        await self.inner.send(payment)  # the bank pays …
        raise Crash()                   # … and we die before recording its answer

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_crash_between_bank_call_and_recording_no_double_payment_after_restart(database_url: str) -> None:
    """Crash safety: `sending` is committed before the call; after a restart the background
    sender re-sends it with the same key; the bank's own record shows one paid key."""
    from services.payments.app import create_app
    from services.payments.settings import Settings
    from shared.messaging.inprocess import InProcessBus

    bank = FakeBank()
    settings = dict(database_url=database_url, bank_dispatch=False, scan_interval_s=0, bank_lease_s=0)
    first = create_app(Settings(**settings), bus=InProcessBus(), bank=CrashAfterCall(bank.http()))
    pid = ""
    try:
        async with running(first) as c:
            pid = await _ready_payout(first, c)
            await svc(first).payouts.dispatch_once()
    except Crash:
        pass
    assert bank.paid == [pid]
    async with first.state.runtime.session_factory() as s:  # engine disposed on shutdown; a new pool opens
        assert (await s.execute(sa.select(payments.c.status).where(payments.c.id == pid))).scalar_one() == "sending"
    restarted = create_app(Settings(**{**settings, "bank_dispatch": True, "bank_poll_interval_s": 0.05}),
                           bus=InProcessBus(), bank=bank.http())
    async with running(restarted) as c:
        async def paid() -> bool:
            r = await c.get(f"/v1/payments/{pid}", headers=auth("county_finance"))
            return r.json()["status"] == "paid"
        await eventually(paid, timeout=10)
        assert await balance(c, CLEARING) == "800.00"
        r = await c.get(f"/v1/payments/{pid}", headers=auth("county_finance"))
        assert [(a["idempotency_key"], a["sends"]) for a in r.json()["attempts"]] == [(pid, 2)]
    assert bank.keys() == [pid, pid] and bank.paid == [pid]


async def test_no_account_waits_visibly_until_one_is_given(sqlite_url: str) -> None:
    bank = FakeBank()
    app = make_payments(sqlite_url, bank)
    async with running(app) as c:
        pid = await _ready_payout(app, c, account=None)
        stats = await svc(app).payouts.dispatch_once()
        assert stats.awaiting_account == 1 and bank.requests == []
        r = await c.get(f"/v1/payments/{pid}", headers=auth("county_finance"))
        assert r.json()["status"] == "awaiting_account"
        r = await set_account(c, r.json()["person_id"])
        assert r.json()["payments_retried"] == 1
        assert (await svc(app).payouts.dispatch_once()).accepted == 1


async def test_account_numbers_are_masked_except_for_the_finance_roles(sqlite_url: str) -> None:
    bank = FakeBank()
    app = make_payments(sqlite_url, bank)
    async with running(app) as c:
        pid = await _ready_payout(app, c, account="6222020200112233445")
        await svc(app).payouts.dispatch_once()
        for role, expected in (("township_finance_leader", "6222020200112233445"),
                               ("county_finance", "6222020200112233445"),
                               ("township_clerk", "***************3445"),
                               ("township_office_director", "***************3445")):
            r = await c.get(f"/v1/payments/{pid}", headers=auth(role, TOWNSHIP))
            assert r.json()["attempts"][0]["account_number"] == expected, role
            person_id = (await c.get(f"/v1/payments/{pid}", headers=auth("county_finance"))).json()["person_id"]
            r = await c.get(f"/v1/beneficiaries/{person_id}", headers=auth(role, TOWNSHIP))
            assert r.json()["account"]["account_number"] == expected, role


async def test_patch_account_bad_input_is_422_and_outside_region_404(sqlite_url: str) -> None:
    app = make_payments(sqlite_url)
    async with running(app) as c:
        d = decision(amount="100.00")
        await deliver(app, d)
        url = f"/v1/beneficiaries/{d.applicant_person_id}/account"
        r = await c.patch(url, json={"account_number": "12ab"}, headers=auth("county_finance"))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "account_number"
        r = await c.patch(url, json={"account_number": "6222020200112233445"}, headers=auth("township_clerk", TOWNSHIP))
        assert r.status_code == 403
        r = await c.patch(url, json={"account_number": "6222020200112233445"},
                          headers=auth("county_finance", "522702000000"))
        assert r.status_code == 404


async def test_http_bank_retries_within_one_call_with_the_same_key() -> None:
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Idempotency-Key"])
        if len(seen) < 3:
            return httpx.Response(502, text="bad gateway")
        return httpx.Response(200, json={"status": "accepted", "bank_ref": "X1", "amount": "12.30"})

    bank = HttpBank(BANK_URL, timeout_s=1, retries=2, backoff_s=0.001, transport=httpx.MockTransport(handler))
    from decimal import Decimal
    result = await bank.send(BankPayment("p1", 1, "p1", "6222", None, None, Decimal("12.30"), "test"))
    await bank.aclose()
    assert result.outcome == "accepted" and result.confirmed_fen == 1230 and seen == ["p1", "p1", "p1"]


def test_bank_answers_are_definite_only_when_the_bank_says_so() -> None:
    assert interpret(201, {"status": "accepted", "bank_ref": "R"}).outcome == "accepted"
    assert interpret(422, {"status": "rejected", "reason": "invalid_account"}).reason == "invalid_account"
    assert interpret(200, {}).outcome == "unknown"
    assert interpret(400, {"error": "bad request"}).outcome == "unknown"
    assert interpret(500, {"status": "rejected", "reason": "x"}).outcome == "unknown"
