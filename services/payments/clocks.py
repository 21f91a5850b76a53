"""P3 time limit: ≤ 5 working days (official calendar) from acceptance to money paid.

One clock per case, started by ``eligibility.case.opened`` (or by the decision when that event
was missed), stopped when the first payment of the case reaches the bank, closed when the case
is denied or transferred. The scan (given "today") reports clocks that turned at-risk or
breached once each, as ``payments.disbursement.deadline`` events.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from shared import metrics
from shared.auth import Principal, region_covers
from shared.calendar import WorkingCalendar, to_shanghai_date
from shared.db import insert_ignore
from shared.errors import NotFound
from shared.events.eligibility import CaseOpened, DecisionMade
from shared.events.payments import DisbursementDeadline
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork
from shared.runtime import ServiceRuntime

from services.payments.domain import deadlines as dd
from services.payments.models import payment_clocks
from services.payments.storage import in_region, utcnow

P3_WORKING_DAYS = dd.P3_WORKING_DAYS  # QN 二(四); the acceptance-to-payment limit for township payouts


class PaymentClockService:
    def __init__(self, runtime: ServiceRuntime, calendar: WorkingCalendar) -> None:
        self.runtime = runtime
        self.calendar = calendar

    # -- events --------------------------------------------------------------------------
    async def on_case_opened(self, tx: UnitOfWork, env: Envelope, data: CaseOpened) -> None:
        await self._start(tx, case_id=data.case_id, application_id=data.application_id, program=data.program,
                          region_code=data.region_code, handling_region_code=data.handling_region_code,
                          received_at=data.received_at)

    async def ensure_for_decision(self, tx: UnitOfWork, data: DecisionMade) -> dict[str, Any]:
        await self._start(tx, case_id=data.case_id, application_id=data.application_id, program=data.program,
                          region_code=data.region_code, handling_region_code=data.handling_region_code,
                          received_at=data.received_at)
        row = (await tx.session.execute(sa.select(payment_clocks).where(payment_clocks.c.case_id == data.case_id))
               ).mappings().one()
        return dict(row)

    async def _start(self, tx: UnitOfWork, *, case_id: str, application_id: str, program: str, region_code: str,
                     handling_region_code: str, received_at: datetime) -> None:
        deadline = self.calendar.add_working_days(received_at, P3_WORKING_DAYS)
        await insert_ignore(tx.session, payment_clocks, {
            "case_id": case_id, "application_id": application_id, "program": program,
            "region_code": region_code, "handling_region_code": handling_region_code,
            "accepted_at": received_at, "pay_by": deadline.due, "pay_by_provisional": deadline.provisional,
            "deadline_state": "ok"})

    @staticmethod
    async def close(tx: UnitOfWork, case_id: str, reason: str) -> None:
        await tx.session.execute(payment_clocks.update().where(
            payment_clocks.c.case_id == case_id, payment_clocks.c.paid_at.is_(None),
            payment_clocks.c.closed_at.is_(None)).values(closed_at=utcnow(), closed_reason=reason[:32]))

    @staticmethod
    async def mark_paid(tx: UnitOfWork, case_id: str, paid_at: datetime, *, pay_by: date) -> None:
        """Stops the clock; a late payment that no scan saw counts as a breach now."""
        row = (await tx.session.execute(sa.select(payment_clocks).where(payment_clocks.c.case_id == case_id))
               ).mappings().first()
        if row is None or row["paid_at"] is not None:
            return
        values: dict[str, Any] = {"paid_at": paid_at}
        if not dd.within_limit(to_shanghai_date(paid_at), pay_by) and row["deadline_state"] != "breached":
            values["deadline_state"] = "breached"
            metrics.DEADLINE_BREACHES.labels("payments", "P3").inc()
        await tx.session.execute(payment_clocks.update().where(payment_clocks.c.case_id == case_id).values(**values))

    # -- the scan ------------------------------------------------------------------------
    def state_on(self, today: date, pay_by: date) -> str:
        return dd.classify(today, pay_by, dd.working_days_left(self.calendar, today, pay_by))

    async def scan(self, today: date, region_code: str | None = None) -> list[dict[str, Any]]:
        """Raise a deadline event for every open temporary-assistance clock whose state got worse
        (handled inside ``region_code`` when given: an HTTP caller scans only its own region)."""
        reported = []
        async with self.runtime.uow() as tx:
            query = sa.select(payment_clocks).where(
                payment_clocks.c.program == "linshi", payment_clocks.c.paid_at.is_(None),
                payment_clocks.c.closed_at.is_(None), payment_clocks.c.deadline_state != "breached")
            if region_code is not None:
                query = query.where(in_region(payment_clocks.c.handling_region_code, region_code))
            rows = (await tx.session.execute(query)).mappings().all()
            for row in rows:
                state = self.state_on(today, row["pay_by"])
                if not dd.worse(row["deadline_state"], state):
                    continue
                result = await tx.session.execute(payment_clocks.update().where(
                    payment_clocks.c.case_id == row["case_id"],
                    payment_clocks.c.deadline_state == row["deadline_state"]).values(deadline_state=state))
                if result.rowcount != 1:
                    continue  # another scanner got there first
                if state == "breached":
                    metrics.DEADLINE_BREACHES.labels("payments", "P3").inc()
                tx.emit(DisbursementDeadline(disbursement_id=row["disbursement_id"], case_id=row["case_id"],
                                             handling_region_code=row["handling_region_code"], state=state,
                                             pay_by=row["pay_by"], observed_on=today), subject=row["case_id"])
                reported.append({"case_id": row["case_id"], "disbursement_id": row["disbursement_id"],
                                 "state": state, "pay_by": row["pay_by"].isoformat()})
        return reported

    # -- reading -------------------------------------------------------------------------
    def _view(self, row: Any, today: date) -> dict[str, Any]:
        open_ = row["paid_at"] is None and row["closed_at"] is None
        state = self.state_on(today, row["pay_by"]) if open_ else row["deadline_state"]
        return {"case_id": row["case_id"], "application_id": row["application_id"], "program": row["program"],
                "region_code": row["region_code"], "handling_region_code": row["handling_region_code"],
                "disbursement_id": row["disbursement_id"],
                "accepted_at": row["accepted_at"].isoformat(), "pay_by": row["pay_by"].isoformat(),
                "pay_by_provisional": row["pay_by_provisional"],
                "paid_at": row["paid_at"].isoformat() if row["paid_at"] else None,
                "closed_reason": row["closed_reason"], "state": state,
                "working_days_left": dd.working_days_left(self.calendar, today, row["pay_by"]) if open_ else None,
                "rule": "P3"}

    async def get(self, case_id: str, principal: Principal, today: date | None = None) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            row = (await s.execute(sa.select(payment_clocks).where(payment_clocks.c.case_id == case_id))).mappings().first()
        if row is None or not (region_covers(principal.region, row["handling_region_code"])
                               or region_covers(principal.region, row["region_code"])):
            raise NotFound(f"no payment clock for case {case_id}")
        return self._view(row, today or to_shanghai_date(utcnow()))

    async def list(self, principal: Principal, *, region_code: str | None, state: str | None,
                   today: date, limit: int = 500) -> list[dict[str, Any]]:
        """Open temporary-assistance clocks inside the caller's region, filtered by state on ``today``."""
        scope = region_code or principal.region
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(sa.select(payment_clocks).where(
                payment_clocks.c.program == "linshi", payment_clocks.c.paid_at.is_(None),
                payment_clocks.c.closed_at.is_(None), in_region(payment_clocks.c.handling_region_code, scope))
                .order_by(payment_clocks.c.pay_by, payment_clocks.c.case_id).limit(limit))).mappings().all()
        views = [self._view(r, today) for r in rows]
        return [v for v in views if state is None or v["state"] == state]
