"""Indicators by region and period, from facts other services publish and monitoring's own data:
I5 active discovery, P3 paid within 5 working days, P4 reserve funds, M3 warnings, T3 visits,
I4 zero reports, M4 coverage gaps, M6 deaths and recoveries."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable

import sqlalchemy as sa

from shared.auth import Principal, ensure_region, region_prefix
from shared.calendar import to_shanghai_date
from shared.crypto import cipher_for
from shared.db import insert_ignore
from shared.events.eligibility import CaseOpened
from shared.events.intake import ApplicationDeadline, ZeroReportFiled
from shared.events.payments import (DisbursementDeadline, DisbursementPaid, PaymentFlaggedForRecovery,
                                    ReserveFundAlert)
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork
from shared.money import format_yuan
from shared.runtime import ServiceRuntime

from services.monitoring.regions import within
from services.monitoring.domain.categories import CATEGORIES
from services.monitoring.domain.indicators import CHANNELS, active_discovery_share, share
from services.monitoring.domain.periods import Period, month_of, parse_period
from services.monitoring.models import (new_cases, payouts, recoveries, register, register_history,
                                        reporting_units, reserve_alerts, sla_events, tekun_visits, warnings,
                                        zero_reports)
from shared.db import InsertIgnoring

W = warnings
_ADD_NEW_CASE = InsertIgnoring(new_cases)


class IndicatorService:
    def __init__(self, runtime: ServiceRuntime, clock: Callable[[], datetime] | None = None) -> None:
        self.runtime = runtime
        self.clock = clock or (lambda: datetime.now().astimezone())

    # -- events ----------------------------------------------------------------------------
    async def on_case_opened(self, tx: UnitOfWork, env: Envelope, data: CaseOpened) -> None:
        await self.on_cases_opened(tx, [(env, data)])

    async def on_cases_opened(self, tx: UnitOfWork, events: list[tuple[Envelope, CaseOpened]]) -> None:
        """I5: one row per case (a case re-sent under a new event id keeps its first row)."""
        await _ADD_NEW_CASE.execute(tx.session, [{
            "case_id": data.case_id, "channel": data.channel, "program": data.program,
            "region_code": data.region_code, "opened_on": to_shanghai_date(data.opened_at),
            "opened_at": data.opened_at} for _, data in events])

    async def on_disbursement_paid(self, tx: UnitOfWork, env: Envelope, data: DisbursementPaid) -> None:
        await insert_ignore(tx.session, payouts, {
            "disbursement_id": data.disbursement_id, "case_id": data.case_id, "program": data.program,
            "region_code": data.region_code, "handling_region_code": data.handling_region_code,
            "amount": data.amount, "paid_on": to_shanghai_date(data.paid_at),
            "within_time_limit": data.within_time_limit})

    async def on_reserve_alert(self, tx: UnitOfWork, env: Envelope, data: ReserveFundAlert) -> None:
        await insert_ignore(tx.session, reserve_alerts, {
            "event_id": env.id, "township_code": data.township_code, "kind": data.kind, "amount": data.amount,
            "since": data.since, "observed_on": data.observed_on})

    async def on_application_deadline(self, tx: UnitOfWork, env: Envelope, data: ApplicationDeadline) -> None:
        await insert_ignore(tx.session, sla_events, {
            "event_id": env.id, "source": "application", "ref_id": data.application_id,
            "region_code": data.handling_region_code, "state": data.state, "due_by": data.due_by,
            "observed_on": data.observed_on})

    async def on_disbursement_deadline(self, tx: UnitOfWork, env: Envelope, data: DisbursementDeadline) -> None:
        await insert_ignore(tx.session, sla_events, {
            "event_id": env.id, "source": "disbursement", "ref_id": data.disbursement_id or data.case_id,
            "region_code": data.handling_region_code, "state": data.state, "due_by": data.pay_by,
            "observed_on": data.observed_on})

    async def on_zero_report(self, tx: UnitOfWork, env: Envelope, data: ZeroReportFiled) -> None:
        s = tx.session
        exists = await s.scalar(sa.select(zero_reports.c.period).where(
            zero_reports.c.region_code == data.region_code, zero_reports.c.period == data.period))
        if exists:
            await s.execute(zero_reports.update().where(zero_reports.c.region_code == data.region_code,
                                                        zero_reports.c.period == data.period)
                            .values(found_count=data.found_count, filed_at=data.filed_at))
        else:
            await s.execute(zero_reports.insert().values(region_code=data.region_code, period=data.period,
                                                         found_count=data.found_count, filed_at=data.filed_at))
        await insert_ignore(s, reporting_units, {"region_code": data.region_code, "source": "zero_report",
                                                 "first_seen": date.fromisoformat(data.period + "-01")})

    async def on_recovery_flagged(self, tx: UnitOfWork, env: Envelope, data: PaymentFlaggedForRecovery) -> None:
        s = tx.session
        person = cipher_for(self.runtime.settings.data_encryption_key).index(data.person_id)  # rows hold keys
        region = await s.scalar(sa.select(register_history.c.region_code)
                                .where(register_history.c.person_id == person)
                                .order_by(register_history.c.id.desc()).limit(1))
        await insert_ignore(s, recoveries, {
            "payment_id": data.payment_id, "person_id": person, "region_code": region,
            "amount": data.amount, "paid_on": data.paid_on, "date_of_death": data.date_of_death,
            "flagged_on": to_shanghai_date(self.clock())})

    # -- I5 (kept: GET /v1/indicators/new-cases) ---------------------------------------------
    async def new_cases_by_channel(self, principal: Principal, region_code: str,
                                   date_from: date | None, date_to: date | None) -> dict[str, Any]:
        ensure_region(principal, region_code)
        async with self.runtime.session_factory() as s:
            counts = await self._channels(s, region_prefix(region_code), date_from, date_to)
        return {"region_code": region_code, "from": date_from, "to": date_to, "by_channel": counts,
                "active_discovery": active_discovery_share(counts)}

    @staticmethod
    async def _channels(s: Any, prefix: str, date_from: date | None, date_to: date | None) -> dict[str, int]:
        q = (sa.select(new_cases.c.channel, sa.func.count()).group_by(new_cases.c.channel)
             .where(within(new_cases.c.region_code, prefix)))
        if date_from:
            q = q.where(new_cases.c.opened_on >= date_from)
        if date_to:
            q = q.where(new_cases.c.opened_on <= date_to)
        return {ch: 0 for ch in CHANNELS} | {ch: n for ch, n in (await s.execute(q)).all()}

    # -- all indicators ------------------------------------------------------------------------
    async def indicators(self, principal: Principal, region_code: str, period_text: str) -> dict[str, Any]:
        ensure_region(principal, region_code)
        period = parse_period(period_text)
        async with self.runtime.session_factory() as s:
            return await self.compute(s, region_code, period)

    async def compute(self, s: Any, region_code: str, period: Period) -> dict[str, Any]:
        prefix = region_prefix(region_code)
        today = to_shanghai_date(self.clock())
        start, end = period.start, period.end
        in_period = lambda col: sa.and_(col >= start, col <= end)  # noqa: E731

        channels = await self._channels(s, prefix, start, end)

        paid = (await s.execute(sa.select(sa.func.count(), sa.func.count(sa.case((payouts.c.within_time_limit.is_(True), 1))))
                                .where(within(payouts.c.region_code, prefix), in_period(payouts.c.paid_on)))).one()

        # P4: the latest alert per township and kind observed in the period
        ra = reserve_alerts
        latest = (sa.select(ra.c.township_code, ra.c.kind, sa.func.max(ra.c.observed_on).label("on"))
                  .where(within(ra.c.township_code, prefix), in_period(ra.c.observed_on))
                  .group_by(ra.c.township_code, ra.c.kind)).subquery()
        alerts = (await s.execute(
            sa.select(ra.c.kind, sa.func.count(sa.distinct(ra.c.township_code)), sa.func.sum(ra.c.amount))
            .select_from(ra.join(latest, sa.and_(ra.c.township_code == latest.c.township_code,
                                                 ra.c.kind == latest.c.kind, ra.c.observed_on == latest.c.on)))
            .group_by(ra.c.kind))).all()
        funds = {k: {"townships": 0, "amount": "0.00"} for k in ("idle_funds", "allocation_booked_as_spent")}
        for kind, n, amount in alerts:
            funds[kind] = {"townships": int(n), "amount": format_yuan(Decimal(amount or 0))}

        w_scope = within(W.c.region_code, prefix)
        raised = (await s.execute(sa.select(W.c.rule, W.c.kind, sa.func.count())
                                  .where(w_scope, in_period(W.c.raised_on)).group_by(W.c.rule, W.c.kind))).all()
        open_now = (await s.execute(sa.select(sa.func.count(), sa.func.count(sa.case((W.c.due_on < today, 1))),
                                              sa.func.count(sa.case((W.c.escalated_at.is_not(None), 1))))
                                    .where(w_scope, W.c.status == "open"))).one()
        closed = (await s.execute(sa.select(W.c.result, sa.func.count())
                                  .where(w_scope, W.c.status == "closed",
                                         sa.func.coalesce(W.c.verified_on, W.c.raised_on) >= start,
                                         sa.func.coalesce(W.c.verified_on, W.c.raised_on) <= end)
                                  .group_by(W.c.result))).all()
        by_rule: dict[str, int] = {}
        by_kind: dict[str, int] = {}
        for rule, kind, n in raised:
            by_rule[rule] = by_rule.get(rule, 0) + n
            by_kind[kind] = by_kind.get(kind, 0) + n
        gaps_included = (await s.scalar(sa.select(sa.func.count()).where(
            w_scope, W.c.rule == "M4", W.c.result == "included", in_period(W.c.raised_on)))) or 0

        # T3: the period's last month (the current month while the period is running)
        month = min(period.last_month, month_of(today))
        m_start, m_end = date.fromisoformat(month + "-01"), parse_period(month).end
        dispersed = sa.select(register.c.person_id).where(
            register.c.category == "tekun", register.c.supply_mode == "dispersed",
            within(register.c.region_code, prefix))
        n_dispersed = int(await s.scalar(sa.select(sa.func.count()).select_from(dispersed.subquery())) or 0)
        n_visited = int(await s.scalar(sa.select(sa.func.count(sa.distinct(tekun_visits.c.person_id))).where(
            tekun_visits.c.person_id.in_(dispersed), tekun_visits.c.visited_on >= m_start,
            tekun_visits.c.visited_on <= m_end)) or 0)

        # I4: expected reporting units per month vs those that filed
        months = [mo for mo in period.months() if mo <= month_of(today)]
        expected_total = filed_total = 0
        missing: list[str] = []
        for mo in months:
            units = sa.select(reporting_units.c.region_code).where(
                within(reporting_units.c.region_code, prefix), reporting_units.c.first_seen <= parse_period(mo).end)
            filed_q = sa.select(zero_reports.c.region_code).where(zero_reports.c.period == mo,
                                                                  within(zero_reports.c.region_code, prefix))
            expected = set((await s.execute(units)).scalars().all())
            filed = set((await s.execute(filed_q)).scalars().all())
            expected |= filed
            expected_total += len(expected)
            filed_total += len(expected & filed)
            if mo == months[-1]:
                missing = sorted(expected - filed)[:50]

        deaths = by_kind.get("death", 0)
        rec = (await s.execute(sa.select(sa.func.count(), sa.func.sum(recoveries.c.amount)).where(
            within(recoveries.c.region_code, prefix), in_period(recoveries.c.flagged_on)))).one()
        sla = (await s.execute(sa.select(sla_events.c.source, sla_events.c.state, sa.func.count(sa.distinct(sla_events.c.ref_id)))
                               .where(within(sla_events.c.region_code, prefix), in_period(sla_events.c.observed_on))
                               .group_by(sla_events.c.source, sla_events.c.state))).all()
        reg = (await s.execute(sa.select(register.c.category, sa.func.count())
                               .where(within(register.c.region_code, prefix)).group_by(register.c.category))).all()

        return {
            "region_code": region_code, "period": period.text, "from": start.isoformat(), "to": end.isoformat(),
            "as_of": today.isoformat(),
            "active_discovery": active_discovery_share(channels) | {"by_channel": channels},
            "paid_within_limit": {"rule": "P3", "limit_working_days": 5, "paid": int(paid[0]),
                                  "within_limit": int(paid[1]), "share": share(int(paid[1]), int(paid[0]))},
            "reserve_funds": {"rule": "P4", "idle_funds": funds["idle_funds"],
                              "allocation_booked_as_spent": funds["allocation_booked_as_spent"]},
            "warnings": {"rule": "M3", "raised": sum(by_rule.values()), "raised_by_rule": by_rule,
                         "raised_by_kind": by_kind, "open": int(open_now[0]), "overdue": int(open_now[1]),
                         "escalated_open": int(open_now[2]),
                         "closed_by_result": {r: n for r, n in closed}},
            "tekun_visits": {"rule": "T3", "month": month, "dispersed": n_dispersed, "visited": n_visited,
                             "share": share(n_visited, n_dispersed)},
            "zero_reports": {"rule": "I4", "months": months, "expected": expected_total, "filed": filed_total,
                             "share": share(filed_total, expected_total), "missing_last_month": missing},
            "coverage_gaps": {"rule": "M4", "found": by_rule.get("M4", 0), "included": int(gaps_included)},
            "deaths": {"rule": "M6", "detected": deaths, "recoveries_flagged": int(rec[0]),
                       "recovery_amount": format_yuan(Decimal(rec[1] or 0))},
            "time_limits": {f"{src}_{state}": int(n) for src, state, n in sla},
            "register": {c: 0 for c in CATEGORIES} | {c: int(n) for c, n in reg},
        }
