"""Payments test helpers: a fake bank that records every request with its key, event builders,
an app factory that drives the bank sender and the scans by hand."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import httpx
import sqlalchemy as sa

from shared.events.base import EventData
from shared.events.eligibility import BenefitChanged, CaseOpened, DecisionMade
from shared.events.monitoring import PersonDied
from shared.messaging.bus import IncomingMessage
from shared.messaging.envelope import Envelope
from shared.messaging.inprocess import InProcessBus
from shared.messaging.tables import outbox
from tests.support import COUNTY, TOWNSHIP, auth, make_id

from services.payments.app import create_app
from services.payments.bank import HttpBank
from services.payments.settings import Settings

BANK_URL = "http://bank.test"


@dataclass
class FakeBank:
    """Dedupes on Idempotency-Key like a real bank: a repeated key gets the first answer and is
    never paid twice. ``mode`` makes the next requests misbehave."""

    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    paid: list[str] = field(default_factory=list)  # keys actually paid (once each)
    closed_accounts: set[str] = field(default_factory=set)
    invalid_accounts: set[str] = field(default_factory=set)
    mode: str = "ok"  # ok | timeout | 5xx | answer_after_timeout

    async def handler(self, request: httpx.Request) -> httpx.Response:
        import orjson
        key = request.headers.get("Idempotency-Key", "")
        body = orjson.loads(request.content)
        self.requests.append((key, body))
        if self.mode == "timeout":
            raise httpx.ReadTimeout("bank did not answer", request=request)
        if self.mode == "5xx":
            return httpx.Response(503, json={"error": "maintenance"})
        if key not in self.answers:
            account = body["account_number"]
            if account in self.closed_accounts:
                self.answers[key] = (422, {"status": "rejected", "reason": "account_closed"})
            elif account in self.invalid_accounts:
                self.answers[key] = (422, {"status": "rejected", "reason": "invalid_account"})
            else:
                self.paid.append(key)
                self.answers[key] = (201, {"status": "accepted", "bank_ref": f"BR-{len(self.paid):06d}",
                                           "amount": body["amount"]})
        if self.mode == "answer_after_timeout":
            raise httpx.ReadTimeout("answer lost on the way back", request=request)
        status, answer = self.answers[key]
        return httpx.Response(status, json=answer)

    def http(self) -> HttpBank:
        return HttpBank(BANK_URL, timeout_s=1, retries=0, transport=httpx.MockTransport(self.handler))

    def keys(self) -> list[str]:
        return [k for k, _ in self.requests]


def make_payments(database_url: str, bank: FakeBank | None = None, **overrides: Any):
    options: dict[str, Any] = {"consumer_retry_backoff_s": 0.01, "outbox_poll_interval_s": 0.05,
                               "bank_dispatch": False, "scan_interval_s": 0, "bank_lease_s": 0}
    settings = Settings(database_url=database_url, **(options | overrides))
    return create_app(settings, bus=InProcessBus(), bank=bank.http() if bank else None)


def person(seq: int) -> str:
    return make_id(date(1950, 3, 1), seq)


def key(seq: int) -> str:
    """The person key payments' rows and ledger accounts hold for ``person(seq)`` (shared/pii.py)."""
    from shared.crypto import cipher_for
    from shared.settings import DEV_DATA_KEY
    return cipher_for(DEV_DATA_KEY).index(person(seq))


def decision(*, program: str = "linshi", outcome: str = "approved", case_id: str | None = None,
             person_seq: int = 1, amount: str | None = "1200.00", monthly: str | None = None,
             level: str = "township", staged: list[str] | None = None, pay_first: bool = False,
             received_at: datetime | None = None, effective_from: date = date(2026, 11, 1),
             exit_months: int | None = None, covered: list[str] | None = None,
             handling: str = TOWNSHIP, region: str = TOWNSHIP, decision_id: str | None = None) -> DecisionMade:
    pid = person(person_seq)
    now = datetime.now(timezone.utc)
    return DecisionMade(
        decision_id=decision_id or str(uuid.uuid4()), case_id=case_id or str(uuid.uuid4()),
        application_id=str(uuid.uuid4()), program=program, channel="window", region_code=region,
        handling_region_code=handling, applicant_person_id=pid, covered_person_ids=covered or [pid],
        outcome=outcome, monthly_amount=Decimal(monthly) if monthly else None,
        one_time_amount=Decimal(amount) if (amount and program == "linshi") else None, approval_level=level,
        exit_months=exit_months, effective_from=effective_from, policy_version="pv-1",
        received_at=received_at or now, decided_at=now, decided_by="county_civil_affairs-test",
        staged_payments=[Decimal(a) for a in staged] if staged else None, pay_first=pay_first)


def case_opened(d: DecisionMade) -> CaseOpened:
    """The ``case.opened`` of the case ``d`` decides (same case, application, regions, acceptance)."""
    return CaseOpened(case_id=d.case_id, application_id=d.application_id, channel=d.channel, program=d.program,
                      region_code=d.region_code, handling_region_code=d.handling_region_code,
                      applicant_person_id=d.applicant_person_id, household_size=len(d.covered_person_ids),
                      received_at=d.received_at, opened_at=d.received_at)


def benefit_changed(case_id: str, *, change: str, person_seq: int = 1, new: str | None = None,
                    effective_from: date = date(2026, 12, 1), exit_until: date | None = None) -> BenefitChanged:
    return BenefitChanged(case_id=case_id, program="dibao", region_code=TOWNSHIP, applicant_person_id=person(person_seq),
                          covered_person_ids=[person(person_seq)], change=change, old_monthly_amount=None,
                          new_monthly_amount=Decimal(new) if new else None, effective_from=effective_from,
                          exit_until=exit_until, policy_version="pv-2", reason="test")


def died(person_seq: int, on: date) -> PersonDied:
    return PersonDied(person_id=person(person_seq), date_of_death=on, source="civil_registration",
                      reported_at=datetime.now(timezone.utc))


def message(data: EventData, *, event_id: str | None = None, source: str = "eligibility") -> IncomingMessage:
    subject = getattr(data, "case_id", None) or getattr(data, "person_id", "x")
    env = Envelope(type=data.TYPE, source=source, subject=subject, data=data.model_dump(mode="json"))
    if event_id:
        env = env.model_copy(update={"id": event_id})
    return IncomingMessage(topic=env.topic, key=env.subject, value=env.to_bytes(), headers={})


async def deliver(app: Any, data: EventData, **kw: Any) -> None:
    await app.state.runtime.consumers[0].handle(message(data, **kw))


def svc(app: Any) -> Any:
    return app.state.payments


async def fund_county(client: httpx.AsyncClient, amount: str = "1000000.00", county: str = COUNTY) -> None:
    r = await client.post("/v1/budget-appropriations", json={"county_code": county, "amount": amount,
                                                             "reference": "预算指标-2026"},
                          headers=auth("county_finance", county))
    assert r.status_code == 201, r.text


async def allocate(client: httpx.AsyncClient, amount: str, township: str = TOWNSHIP) -> dict[str, Any]:
    r = await client.post("/v1/reserve-allocations", json={"township_code": township, "amount": amount,
                                                           "reference": "联合行文-1"},
                          headers=auth("county_civil_affairs"))
    assert r.status_code == 201, r.text
    aid = r.json()["allocation_id"]
    for role in ("county_civil_affairs", "county_finance"):
        r = await client.post(f"/v1/reserve-allocations/{aid}/approvals", json={}, headers=auth(role))
        assert r.status_code == 201, r.text
    return r.json()


SIGNERS = ("township_office_director", "township_office_leader", "township_finance_leader")


async def sign_all(client: httpx.AsyncClient, disbursement_id: str, roles: tuple[str, ...] = SIGNERS,
                   region: str = TOWNSHIP) -> httpx.Response:
    r: httpx.Response | None = None
    for role in roles:
        r = await client.post(f"/v1/disbursements/{disbursement_id}/signoffs", json={"comment": "同意"},
                              headers=auth(role, region))
        assert r.status_code == 201, r.text
    assert r is not None
    return r


async def set_account(client: httpx.AsyncClient, person_id: str, number: str = "6222020200112233445") -> httpx.Response:
    return await client.patch(f"/v1/beneficiaries/{person_id}/account",
                              json={"account_number": number, "account_name": "张三", "bank_name": "农村信用社"},
                              headers=auth("township_finance_leader", TOWNSHIP))


async def balance(client: httpx.AsyncClient, account: str) -> str:
    r = await client.get(f"/v1/ledger/accounts/{account}/entries", headers=auth("county_finance"))
    assert r.status_code == 200, r.text
    return r.json()["balance"]


async def only_disbursement(app: Any) -> str:
    from services.payments.models import disbursements
    async with app.state.runtime.session_factory() as s:
        return (await s.execute(sa.select(disbursements.c.id))).scalar_one()


async def events(app: Any, type_: str) -> list[dict[str, Any]]:
    import orjson
    async with app.state.runtime.session_factory() as s:
        rows = (await s.execute(sa.select(outbox.c.payload).where(outbox.c.type == type_).order_by(outbox.c.seq))
                ).scalars().all()
    return [orjson.loads(r)["data"] for r in rows]


async def count(app: Any, table: sa.Table, *where: Any) -> int:
    async with app.state.runtime.session_factory() as s:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(table).where(*where)) or 0)


async def settle() -> None:
    await asyncio.sleep(0)


async def assert_ledger_ok(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/ledger/verification", headers=auth("county_finance"))
    assert r.status_code == 200 and r.json()["ok"], r.json()
