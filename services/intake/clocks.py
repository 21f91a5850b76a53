"""限时办理 (I3): the deadline scan.

:func:`DeadlineScanner.scan` is a plain async function of "today": it moves every open
application's ``deadline_state`` to on_time / at_risk / overdue and emits
``intake.application.deadline`` only for the rows whose state changed to at_risk or overdue —
once per change, never once per scan. The UPDATE … WHERE deadline_state <> new RETURNING makes
concurrent scans (several replicas) announce each change exactly once. Deadlines computed
weekends-only for a year without calendar data are recomputed first once that year is loaded.
"""
from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import sqlalchemy as sa

from shared import metrics as shared_metrics
from shared.auth import region_prefix
from shared.calendar import to_shanghai_date
from shared.events.intake import ApplicationDeadline
from shared.logging import get_logger

from services.intake import metrics
from services.intake.domain.deadlines import overall_deadline, step_deadline
from services.intake.models import applications
from services.intake.schemas import DeadlineScanOut
from services.intake.service import IntakeService

log = get_logger("intake.clocks")


class DeadlineScanner:
    def __init__(self, intake: IntakeService) -> None:
        self.intake = intake
        self.runtime = intake.runtime

    async def scan(self, today: date, *, region_code: str | None = None) -> DeadlineScanOut:
        recomputed = await self.recompute_provisional()
        scope = _scope(region_code)
        emitted = 0
        async with self.runtime.uow() as tx:
            for state in ("overdue", "at_risk", "on_time"):
                stmt = (applications.update()
                        .where(applications.c.clock_due_by.is_not(None),
                               self.intake.state_condition(state, today),
                               applications.c.deadline_state != state, *scope)
                        .values(deadline_state=state)
                        .returning(applications.c.id, applications.c.program, applications.c.channel,
                                   applications.c.handling_region_code, applications.c.clock_due_by))
                changed = (await tx.session.execute(stmt)).all()
                if state == "on_time":
                    continue
                for r in changed:
                    tx.emit(ApplicationDeadline(application_id=r.id, program=r.program, channel=r.channel,
                                                handling_region_code=r.handling_region_code, state=state,
                                                due_by=r.clock_due_by, observed_on=today), subject=r.id)
                    metrics.DEADLINE_EVENTS.labels(state).inc()
                    if state == "overdue":
                        shared_metrics.DEADLINE_BREACHES.labels(self.runtime.name, "application_step").inc()
                emitted += len(changed)
        counts = await self.counts(today, region_code=region_code)
        if region_code is None:
            for state, n in counts.items():
                metrics.APPLICATIONS_BY_DEADLINE.labels(state).set(n)
        if emitted:
            log.info("deadline_scan", on=today.isoformat(), events=emitted, **counts)
        return DeadlineScanOut(on=today, region_code=region_code or "000000000000", overdue=counts["overdue"],
                               at_risk=counts["at_risk"], events_emitted=emitted, recomputed=recomputed)

    async def counts(self, today: date, *, region_code: str | None = None) -> dict[str, int]:
        out = {}
        async with self.runtime.session_factory() as s:
            for state in ("overdue", "at_risk"):
                out[state] = int(await s.scalar(
                    sa.select(sa.func.count()).select_from(applications)
                    .where(applications.c.clock_due_by.is_not(None),
                           self.intake.state_condition(state, today), *_scope(region_code))) or 0)
        return out

    async def refresh_gauge(self) -> None:
        counts = await self.counts(to_shanghai_date(self.intake.clock()))
        for state, n in counts.items():
            metrics.APPLICATIONS_BY_DEADLINE.labels(state).set(n)

    async def recompute_provisional(self) -> int:
        """Deadlines guessed weekends-only become final once the year's calendar is loaded."""
        cal = self.intake.calendar
        async with self.runtime.uow() as tx:
            rows = (await tx.session.execute(
                sa.select(applications.c.id, applications.c.program, applications.c.status,
                          applications.c.accepted_at, applications.c.step_started_at, applications.c.due_by,
                          applications.c.due_by_provisional, applications.c.clock_due_by,
                          applications.c.clock_provisional)
                .where(sa.or_(applications.c.due_by_provisional.is_(True), applications.c.clock_provisional.is_(True)),
                       applications.c.clock_due_by.is_not(None)))).all()
            n = 0
            for r in rows:
                if not all(cal.has_year(d.year) for d in (r.due_by, r.clock_due_by) if d is not None):
                    continue
                days, limits = self.intake.days, self.intake.limits
                values: dict[str, Any] = {}
                overall = None
                if r.accepted_at is not None:
                    overall = overall_deadline(r.program, r.accepted_at, days, limits)
                    values.update(due_by=overall.due, due_by_provisional=overall.provisional)
                clock = step_deadline(r.status, r.program, r.step_started_at or r.accepted_at, overall, days, limits)
                if clock is not None:
                    values.update(clock_due_by=clock.due, clock_provisional=clock.provisional,
                                  clock_at_risk_on=clock.at_risk_on)
                await tx.session.execute(applications.update().where(applications.c.id == r.id).values(**values))
                n += 1
        if n:
            log.info("deadlines_recomputed", count=n)
        return n

    async def run(self, interval_s: float) -> None:
        """Background task: scan as of today (Asia/Shanghai) every ``interval_s`` seconds."""
        while True:
            try:
                await self.scan(to_shanghai_date(self.intake.clock()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("deadline_scan_failed", error=str(exc)[:300])
            await asyncio.sleep(interval_s)


def _scope(region_code: str | None) -> list[Any]:
    if region_code is None:
        return []
    prefix = region_prefix(region_code) + "%"
    return [sa.or_(applications.c.region_code.like(prefix), applications.c.handling_region_code.like(prefix))]

