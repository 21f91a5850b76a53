"""P3 time limit: ≤ 5 working days (official calendar) from acceptance to money paid.

One clock per case, started by ``eligibility.case.opened`` (or by the decision when that event
was missed), stopped when the first payment of the case reaches the bank, closed when the case
is denied or transferred. The scan (given "today") reports clocks that turned at-risk or
breached once each, as ``payments.disbursement.deadline`` events.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from shared import metrics
from shared.auth import Principal, region_covers
from shared.calendar import Deadline, WorkingCalendar, WorkingDays, to_shanghai_date
from shared.db import InsertIgnoring
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


# Built once: the consumer runs these for every case opened and every decision.
_INSERT_CLOCKS = InsertIgnoring(payment_clocks, payment_clocks.c.case_id)
_PAY_BY_OF = sa.select(payment_clocks.c.case_id, payment_clocks.c.pay_by, payment_clocks.c.pay_by_provisional).where(
    payment_clocks.c.case_id.in_(sa.bindparam("case_ids", expanding=True)))
_CLOSE = payment_clocks.update().where(
    payment_clocks.c.case_id == sa.bindparam("b_case_id"), payment_clocks.c.paid_at.is_(None),
    payment_clocks.c.closed_at.is_(None)).values(closed_at=sa.bindparam("b_closed_at"),
                                                 closed_reason=sa.bindparam("b_closed_reason"))


class PaymentClockService:
    def __init__(self, runtime: ServiceRuntime, calendar: WorkingCalendar) -> None:
        self.runtime = runtime
        self.calendar = calendar
        self._days = WorkingDays(calendar)

    # -- events --------------------------------------------------------------------------
    async def on_case_opened(self, tx: UnitOfWork, env: Envelope, data: CaseOpened) -> None:
        await self.on_cases_opened(tx, [data])

    async def on_cases_opened(self, tx: UnitOfWork, opened: Sequence[CaseOpened]) -> None:
        """A run of opened cases: one multi-row insert; a case whose clock runs already keeps it."""
        await _INSERT_CLOCKS.execute(tx.session, self._rows(opened))

    async def ensure_for_decisions(self, tx: UnitOfWork, decided: Sequence[DecisionMade]) -> dict[str, Deadline]:
        """The clock of every decided case (started now if ``case.opened`` was missed): case id →
        its pay-by date. One look-up; an insert only for the cases without a clock."""
        case_ids = list(dict.fromkeys(data.case_id for data in decided))
        pay_by = await self._pay_by_of(tx, case_ids)
        missing = self._rows(data for data in decided if data.case_id not in pay_by)
        started = await _INSERT_CLOCKS.inserted(tx.session, missing)
        for row in missing:
            if row["case_id"] in started:
                pay_by[row["case_id"]] = Deadline(row["pay_by"], row["pay_by_provisional"])
        if len(pay_by) < len(case_ids):  # a concurrent transaction started some of them first
            pay_by.update(await self._pay_by_of(tx, [c for c in case_ids if c not in pay_by]))
        return pay_by

    @staticmethod
    async def close(tx: UnitOfWork, closing: Sequence[tuple[str, str]]) -> None:
        """``(case id, reason)`` in order: a clock closes once, with the first reason."""
        if closing:
            now = utcnow()
            await tx.session.execute(_CLOSE, [{"b_case_id": case_id, "b_closed_at": now,
                                               "b_closed_reason": reason[:32]} for case_id, reason in closing])

    @staticmethod
    async def _pay_by_of(tx: UnitOfWork, case_ids: list[str]) -> dict[str, Deadline]:
        if not case_ids:
            return {}
        rows = await tx.session.execute(_PAY_BY_OF, {"case_ids": case_ids})
        return {case_id: Deadline(pay_by, provisional) for case_id, pay_by, provisional in rows}

    def _rows(self, sources: Iterable[CaseOpened | DecisionMade]) -> list[dict[str, Any]]:
        """One clock row per case, from its first event (the ones after it would be ignored)."""
        rows: dict[str, dict[str, Any]] = {}
        for data in sources:
            if data.case_id in rows:
                continue
            deadline = self.deadline(data.received_at)
            rows[data.case_id] = {
                "case_id": data.case_id, "application_id": data.application_id, "program": data.program,
                "region_code": data.region_code, "handling_region_code": data.handling_region_code,
                "accepted_at": data.received_at, "pay_by": deadline.due, "pay_by_provisional": deadline.provisional,
                "deadline_state": "ok"}
        return list(rows.values())

    def deadline(self, received_at: datetime) -> Deadline:
        """P3's pay-by date (memoised: the walk through the calendar was a measurable share of the
        consumer's CPU)."""
        return self._days.add(received_at, P3_WORKING_DAYS)

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
