"""Monitoring use cases fed by events: new cases by channel (I5)."""
from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from shared.auth import Principal, ensure_region, region_prefix
from shared.calendar import to_shanghai_date
from shared.db import insert_ignore
from shared.events.eligibility import CaseOpened
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork
from shared.runtime import ServiceRuntime

from services.monitoring.domain.indicators import CHANNELS, active_discovery_share
from services.monitoring.models import new_cases


class IndicatorService:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    async def on_case_opened(self, tx: UnitOfWork, env: Envelope, data: CaseOpened) -> None:
        await insert_ignore(tx.session, new_cases, {
            "case_id": data.case_id, "channel": data.channel, "program": data.program,
            "region_code": data.region_code, "opened_on": to_shanghai_date(data.opened_at),
            "opened_at": data.opened_at})

    async def new_cases_by_channel(self, principal: Principal, region_code: str,
                                   date_from: date | None, date_to: date | None) -> dict[str, Any]:
        ensure_region(principal, region_code)
        q = (sa.select(new_cases.c.channel, sa.func.count()).group_by(new_cases.c.channel)
             .where(new_cases.c.region_code.startswith(region_prefix(region_code))))
        if date_from:
            q = q.where(new_cases.c.opened_on >= date_from)
        if date_to:
            q = q.where(new_cases.c.opened_on <= date_to)
        async with self.runtime.session_factory() as s:
            counts = {ch: 0 for ch in CHANNELS} | {ch: n for ch, n in (await s.execute(q)).all()}
        return {"region_code": region_code, "from": date_from, "to": date_to, "by_channel": counts,
                "active_discovery": active_discovery_share(counts)}
