"""P3 time limit: ≤ 5 working days (official calendar) from acceptance to money paid."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shared.auth import Principal, region_covers
from shared.calendar import WorkingCalendar
from shared.db import insert_ignore
from shared.errors import NotFound
from shared.events.eligibility import CaseOpened
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork
from shared.runtime import ServiceRuntime

from services.payments.models import payment_clocks

P3_WORKING_DAYS = 5  # QN 二(四); the acceptance-to-payment limit for township payouts


class PaymentClockService:
    def __init__(self, runtime: ServiceRuntime, calendar: WorkingCalendar) -> None:
        self.runtime = runtime
        self.calendar = calendar

    async def on_case_opened(self, tx: UnitOfWork, env: Envelope, data: CaseOpened) -> None:
        deadline = self.calendar.add_working_days(data.received_at, P3_WORKING_DAYS)
        await insert_ignore(tx.session, payment_clocks, {
            "case_id": data.case_id, "application_id": data.application_id, "program": data.program,
            "region_code": data.region_code, "handling_region_code": data.handling_region_code,
            "accepted_at": data.received_at, "pay_by": deadline.due, "pay_by_provisional": deadline.provisional})

    async def get(self, case_id: str, principal: Principal) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            row = (await s.execute(sa.select(payment_clocks).where(payment_clocks.c.case_id == case_id))).mappings().first()
        if row is None or not (region_covers(principal.region, row["handling_region_code"])
                               or region_covers(principal.region, row["region_code"])):
            raise NotFound(f"no payment clock for case {case_id}")
        return {"case_id": row["case_id"], "application_id": row["application_id"], "program": row["program"],
                "handling_region_code": row["handling_region_code"], "accepted_at": row["accepted_at"].isoformat(),
                "pay_by": row["pay_by"].isoformat(), "pay_by_provisional": row["pay_by_provisional"],
                "paid_at": row["paid_at"].isoformat() if row["paid_at"] else None, "rule": "P3"}
