"""M3 warnings: listing, the on-the-ground result that closes one, and the escalation scan that
moves overdue warnings to the county (限时核查)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable

import sqlalchemy as sa

from shared import metrics
from shared.auth import Principal, county_of, ensure_region, region_prefix
from shared.calendar import to_shanghai_date
from shared.errors import Conflict, InvalidInput, NotFound
from shared.events.monitoring import WarningClosed, WarningEscalated
from shared.pii import PersonVault
from shared.privacy import present_id
from shared.runtime import ServiceRuntime

from services.monitoring.regions import within
from services.monitoring import audit
from services.monitoring.domain.rules import WarningRules
from services.monitoring.models import register, warning_actions, warnings

W = warnings


def _county(region_code: str) -> str:
    try:
        return county_of(region_code)
    except ValueError:
        return region_code  # already a county or above: it stays where it is


class WarningService:
    def __init__(self, runtime: ServiceRuntime, rules: WarningRules, persons: PersonVault, *,
                 clock: Callable[[], datetime]) -> None:
        self.runtime = runtime
        self.persons = persons
        self.rules = rules
        self.clock = clock

    def _out(self, w: Any, principal: Principal, today: date) -> dict[str, Any]:
        return {
            "warning_id": w["id"], "rule": w["rule"], "kind": w["kind"], "label": w["label"], "level": w["level"],
            "person_id": present_id(w["person_id"], principal.role), "region_code": w["region_code"],
            "covered": w["covered"], "source_type": w["source_type"], "source_record_id": w["source_record_id"],
            "occurred_on": w["occurred_on"].isoformat() if w["occurred_on"] else None,
            "amount": f"{w['amount']:.2f}" if w["amount"] is not None else None, "grade": w["grade"],
            "raised_at": w["raised_at"].isoformat(), "due_on": w["due_on"].isoformat(),
            "due_provisional": w["due_provisional"], "deadline_working_days": self.rules.days(w["level"]),
            "status": w["status"], "overdue": w["status"] == "open" and w["due_on"] < today,
            "escalated_to": w["escalated_to"],
            "escalated_at": w["escalated_at"].isoformat() if w["escalated_at"] else None,
            "result": w["result"], "result_label": self.rules.close_results.get(w["result"] or ""),
            "note": w["note"], "verified_on": w["verified_on"].isoformat() if w["verified_on"] else None,
            "closed_at": w["closed_at"].isoformat() if w["closed_at"] else None,
            "closed_by": w["closed_by"], "closed_by_name": w["closed_by_name"],
        }

    def _scope(self, principal: Principal, region_code: str | None) -> sa.ColumnElement[bool]:
        region = region_code or principal.region
        ensure_region(principal, region)
        prefix = region_prefix(region)
        # the county sees what was escalated to it, too
        return sa.or_(within(W.c.region_code, prefix), within(W.c.escalated_to, prefix))

    async def list(self, principal: Principal, *, region_code: str | None, status: str | None, level: int | None,
                   kind: str | None, after_id: int, limit: int) -> dict[str, Any]:
        today = to_shanghai_date(self.clock())
        q = sa.select(W).where(self._scope(principal, region_code), W.c.id > after_id)
        if status == "open":
            q = q.where(W.c.status == "open")
        elif status == "overdue":
            q = q.where(W.c.status == "open", W.c.due_on < today)
        elif status == "escalated":
            q = q.where(W.c.escalated_at.is_not(None))
        elif status == "closed":
            q = q.where(W.c.status == "closed")
        if level:
            q = q.where(W.c.level == level)
        if kind:
            q = q.where(W.c.kind == kind)
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(q.order_by(W.c.id).limit(limit))).mappings().all()
            shown = await self.persons.rows_with_numbers(s, rows, "person_id")
        return {"items": [self._out(w, principal, today) for w in shown],
                "next_after": rows[-1]["id"] if len(rows) == limit else None}

    async def get(self, warning_id: int, principal: Principal) -> dict[str, Any]:
        today = to_shanghai_date(self.clock())
        async with self.runtime.session_factory() as s:
            w = (await s.execute(sa.select(W).where(W.c.id == warning_id))).mappings().first()
            if w is None or not (principal.covers(w["region_code"]) or
                                 (w["escalated_to"] and principal.covers(w["escalated_to"]))):
                raise NotFound(f"warning {warning_id} not found")
            actions = (await s.execute(sa.select(warning_actions).where(warning_actions.c.warning_id == warning_id)
                                       .order_by(warning_actions.c.id))).mappings().all()
            categories = (await s.execute(sa.select(register.c.category).where(register.c.person_id == w["person_id"])
                                          )).scalars().all()
            w = (await self.persons.rows_with_numbers(s, [w], "person_id"))[0]
        out = self._out(w, principal, today)
        out["categories"] = sorted(categories)
        out["trail"] = [{"action": "raised", "at": w["raised_at"].isoformat(), "actor": f"rule {w['rule']}",
                         "detail": f"{w['source_type']} record {w['source_record_id']}"}] + [
            {"action": a["action"], "at": a["at"].isoformat(), "actor": a["actor"], "detail": a["detail"]}
            for a in actions]
        return out

    async def close(self, warning_id: int, principal: Principal, *, result: str, note: str | None,
                    verified_on: date | None) -> dict[str, Any]:
        """线下核处: only with a recorded result of the on-the-ground check, by a named person."""
        if result not in self.rules.close_results:
            raise InvalidInput.field("result", f"must be one of {', '.join(self.rules.close_results)}")
        now = self.clock()
        today = to_shanghai_date(now)
        if verified_on and verified_on > today:
            raise InvalidInput.field("verified_on", "is in the future")
        actor = f"{principal.role}:{principal.sub}"
        async with self.runtime.uow() as tx:
            w = (await tx.session.execute(sa.select(W).where(W.c.id == warning_id).with_for_update())).mappings().first()
            if w is None or not (principal.covers(w["region_code"]) or
                                 (w["escalated_to"] and principal.covers(w["escalated_to"]))):
                raise NotFound(f"warning {warning_id} not found")
            if w["status"] != "open":
                raise Conflict(f"warning {warning_id} is already closed ({w['result']})")
            if verified_on and verified_on < w["raised_on"]:
                raise InvalidInput.field("verified_on", "is before the warning was raised")
            await tx.session.execute(W.update().where(W.c.id == warning_id).values(
                status="closed", closed_at=now, result=result, note=note, verified_on=verified_on or today,
                closed_by=principal.sub, closed_by_name=principal.name, closed_by_role=principal.role))
            await tx.session.execute(warning_actions.insert().values(
                warning_id=warning_id, action="closed", at=now, actor=actor,
                detail=f"{result} ({self.rules.close_results[result]}): {note or ''}"[:2000]))
            await audit.record(tx.session, principal, "warning.closed", "warning", str(warning_id),
                               {"result": result, "note": note, "verified_on": str(verified_on or today),
                                "rule": w["rule"], "kind": w["kind"]})
            person = await self.persons.reveal_one(tx.session, w["person_id"])  # the event carries the number
            tx.emit(WarningClosed(warning_id=warning_id, rule=w["rule"], kind=w["kind"], person_id=person,
                                  region_code=w["region_code"], result=result, closed_at=now, closed_by=actor),
                    subject=person)
        return await self.get(warning_id, principal)

    async def escalate_overdue(self, today: date, *, actor: str = "scan", region_code: str | None = None) -> dict[str, Any]:
        """Every open warning past its deadline and not yet escalated goes to its county (one event each)."""
        now = self.clock()
        q = sa.select(W).where(W.c.status == "open", W.c.due_on < today, W.c.escalated_at.is_(None))
        if region_code:
            q = q.where(within(W.c.region_code, region_prefix(region_code)))
        escalated = []
        async with self.runtime.uow() as tx:
            rows = (await tx.session.execute(q.order_by(W.c.id).with_for_update(skip_locked=True))).mappings().all()
            numbers = await self.persons.reveal(tx.session, {w["person_id"] for w in rows})
            for w in rows:
                county = _county(w["region_code"])
                await tx.session.execute(W.update().where(W.c.id == w["id"]).values(escalated_at=now, escalated_to=county))
                escalated.append({"warning_id": w["id"], "escalated_to": county, "due_on": w["due_on"].isoformat()})
                tx.emit(WarningEscalated(warning_id=w["id"], rule=w["rule"], kind=w["kind"], level=w["level"],
                                         region_code=w["region_code"], escalated_to=county, due_on=w["due_on"],
                                         observed_on=today), subject=numbers.get(w["person_id"], w["person_id"]))
            if rows:
                await audit.record(tx.session, f"scan:{actor}", "warnings.escalated", "warning_scan", today.isoformat(),
                                   {"warning_ids": [w["id"] for w in rows]})
                await tx.session.execute(warning_actions.insert(), [
                    {"warning_id": w["id"], "action": "escalated", "at": now, "actor": actor,
                     "detail": f"not verified by {w['due_on'].isoformat()}: escalated to county {_county(w['region_code'])}"}
                    for w in rows])
        if escalated:
            metrics.DEADLINE_BREACHES.labels(self.runtime.name, "warning_verification").inc(len(escalated))
        return {"observed_on": today.isoformat(), "escalated": len(escalated), "warnings": escalated}

    async def summary(self, principal: Principal, region_code: str | None) -> dict[str, Any]:
        """Open warnings by level and by deadline (dashboard)."""
        today = to_shanghai_date(self.clock())
        scope = self._scope(principal, region_code)
        bucket = sa.case((W.c.due_on < today, "overdue"), (W.c.due_on == today, "due_today"),
                         (W.c.due_on <= date.fromordinal(today.toordinal() + 3), "due_3_days"), else_="later")
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(sa.select(W.c.level, bucket.label("bucket"), sa.func.count())
                                    .where(scope, W.c.status == "open").group_by(W.c.level, bucket))).all()
            kinds = (await s.execute(sa.select(W.c.kind, sa.func.count()).where(scope, W.c.status == "open")
                                     .group_by(W.c.kind))).all()
            escalated = await s.scalar(sa.select(sa.func.count()).where(scope, W.c.status == "open",
                                                                       W.c.escalated_at.is_not(None)))
        by_level = {str(lvl): {"overdue": 0, "due_today": 0, "due_3_days": 0, "later": 0} for lvl in (1, 2, 3)}
        for lvl, b, n in rows:
            by_level[str(lvl)][b] = n
        return {"region_code": region_code or principal.region, "today": today.isoformat(),
                "open": sum(sum(v.values()) for v in by_level.values()),
                "overdue": sum(v["overdue"] for v in by_level.values()), "escalated_open": int(escalated or 0),
                "by_level": by_level, "by_kind": {k: n for k, n in kinds},
                "deadline_working_days": {str(k): v for k, v in self.rules.deadline_working_days.items()}}
