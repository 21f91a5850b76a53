"""M1 the 7-category register (fed by eligibility's decisions and partner data), its append-only
history, M5 potential cases, and T3 visits to dispersed 特困 persons."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable

import sqlalchemy as sa

from shared.auth import Principal, ensure_region, region_covers, region_prefix
from shared.calendar import to_shanghai_date
from shared.db import insert_ignore
from shared.errors import InvalidInput, NotFound
from shared.events.eligibility import BenefitChanged, DecisionMade
from shared.events.intake import ApplicationTransferred
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork
from shared.pii import PersonVault
from shared.privacy import present_id
from shared.runtime import ServiceRuntime

from services.monitoring.regions import within
from services.monitoring import audit
from services.monitoring.domain.categories import CATEGORIES
from services.monitoring.domain.register import Change, benefit_changes, decision_changes
from services.monitoring.models import (potential_cases, register, register_history, reporting_units,
                                        tekun_visits)

R, H = register, register_history


class RegisterService:
    def __init__(self, runtime: ServiceRuntime, persons: PersonVault, *, clock: Callable[[], datetime],
                 marginal_multiplier: Decimal = Decimal("1.5")) -> None:
        self.runtime = runtime
        self.persons = persons
        self.clock = clock
        self.marginal_multiplier = marginal_multiplier

    # -- applying changes (one transaction: the caller's) -------------------------------------
    async def apply(self, tx: UnitOfWork, changes: list[Change], *, region_code: str, source_type: str,
                    source_ref: str) -> int:
        now = self.clock()
        applied = 0
        # the rows hold person keys; the numbers go to the vault (shown to staff, put on events)
        keys = await self.persons.keep(tx.session, [c.person_id for c in changes])
        changes = [replace(c, person_id=keys[c.person_id]) for c in changes]
        for c in changes:
            current = (await tx.session.execute(sa.select(R).where(R.c.person_id == c.person_id,
                                                                   R.c.category == c.category))).mappings().first()
            if c.action == "enter":
                if current is not None:
                    if current["region_code"] != region_code:  # moved: the same category, a new place
                        await tx.session.execute(R.update().where(R.c.person_id == c.person_id,
                                                                  R.c.category == c.category)
                                                 .values(region_code=region_code, updated_at=now))
                        await self._history(tx, c, region_code, "leave", current["since"], c.on,
                                            f"moved to {region_code}", source_type, source_ref, current["region_code"])
                        await self._history(tx, c, region_code, "enter", c.on, None, c.reason, source_type, source_ref)
                        applied += 1
                    continue
                await tx.session.execute(R.insert().values(
                    person_id=c.person_id, category=c.category, region_code=region_code, since=c.on,
                    supply_mode="dispersed" if c.category == "tekun" else None,
                    source_type=source_type, source_ref=source_ref, updated_at=now))
                await self._history(tx, c, region_code, "enter", c.on, None, c.reason, source_type, source_ref)
                await insert_ignore(tx.session, reporting_units, {"region_code": region_code, "source": "register",
                                                                  "first_seen": c.on})
                applied += 1
            elif current is not None:
                await tx.session.execute(R.delete().where(R.c.person_id == c.person_id, R.c.category == c.category))
                await self._history(tx, c, current["region_code"], "leave", current["since"], c.on, c.reason,
                                    source_type, source_ref)
                applied += 1
        return applied

    async def _history(self, tx: UnitOfWork, c: Change, region_code: str, action: str, valid_from: date,
                       valid_to: date | None, reason: str, source_type: str, source_ref: str,
                       at_region: str | None = None) -> None:
        await tx.session.execute(H.insert().values(
            person_id=c.person_id, category=c.category, region_code=at_region or region_code, action=action,
            valid_from=valid_from, valid_to=valid_to, reason=reason[:200], source_type=source_type,
            source_ref=source_ref, recorded_at=self.clock()))

    # -- events ----------------------------------------------------------------------------
    async def on_decision_made(self, tx: UnitOfWork, env: Envelope, data: DecisionMade) -> None:
        changes = decision_changes(data, self.marginal_multiplier)
        await self.apply(tx, changes, region_code=data.region_code, source_type=data.TYPE, source_ref=env.id)
        if any(c.category == "marginal" and c.action == "enter" for c in changes):
            await insert_ignore(tx.session, potential_cases, {
                "dedupe_key": f"decision:{data.decision_id}", "person_id": self.persons.key(data.applicant_person_id),
                "region_code": data.region_code, "case_id": data.case_id, "source": "denied_marginal",
                "reason": "低保申请未通过，家庭月人均收入在低保标准与边缘线之间（M5）", "since": data.effective_from,
                "recorded_at": self.clock()})

    async def on_benefit_changed(self, tx: UnitOfWork, env: Envelope, data: BenefitChanged) -> None:
        await self.apply(tx, benefit_changes(data), region_code=data.region_code, source_type=data.TYPE,
                         source_ref=env.id)

    async def on_application_transferred(self, tx: UnitOfWork, env: Envelope, data: ApplicationTransferred) -> None:
        """转办 (I2, L5): not covered here, handed to another department — kept on file (M5)."""
        person = (await self.persons.keep(tx.session, [data.applicant_person_id]))[data.applicant_person_id]
        await insert_ignore(tx.session, potential_cases, {
            "dedupe_key": f"transfer:{data.application_id}", "person_id": person,
            "region_code": data.region_code, "case_id": None, "source": "transferred",
            "reason": f"转办 {data.department}: {data.reason}"[:300], "since": to_shanghai_date(data.transferred_at),
            "recorded_at": self.clock()})

    # -- reads -----------------------------------------------------------------------------
    async def list(self, principal: Principal, *, region_code: str, category: str | None, page: int,
                   page_size: int) -> dict[str, Any]:
        ensure_region(principal, region_code)
        if category is not None and category not in CATEGORIES:
            raise InvalidInput.field("category", f"must be one of {', '.join(CATEGORIES)}")
        where = [within(R.c.region_code, region_prefix(region_code))]
        if category:
            where.append(R.c.category == category)
        async with self.runtime.session_factory() as s:
            total = int(await s.scalar(sa.select(sa.func.count()).select_from(R).where(*where)) or 0)
            rows = (await s.execute(sa.select(R).where(*where).order_by(R.c.person_id, R.c.category)
                                    .offset((page - 1) * page_size).limit(page_size))).mappings().all()
            rows = await self.persons.rows_with_numbers(s, rows, "person_id")
        return {"region_code": region_code, "category": category, "page": page, "page_size": page_size,
                "total": total,
                "items": [{"person_id": present_id(r["person_id"], principal.role), "category": r["category"],
                           "category_label": CATEGORIES[r["category"]], "region_code": r["region_code"],
                           "since": r["since"].isoformat(), "supply_mode": r["supply_mode"],
                           "source": r["source_type"]} for r in rows]}

    async def counts(self, region_code: str) -> dict[str, int]:
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(sa.select(R.c.category, sa.func.count())
                                    .where(within(R.c.region_code, region_prefix(region_code)))
                                    .group_by(R.c.category))).all()
        return {c: 0 for c in CATEGORIES} | {c: int(n) for c, n in rows}

    async def history(self, person_id: str, principal: Principal) -> dict[str, Any]:
        key = self.persons.key(person_id)
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(sa.select(H).where(H.c.person_id == key).order_by(H.c.id))).mappings().all()
            current = (await s.execute(sa.select(R).where(R.c.person_id == key))).mappings().all()
        rows = [r for r in rows if region_covers(principal.region, r["region_code"])]
        if not rows:
            raise NotFound("person not found in the register")
        return {"person_id": present_id(person_id, principal.role),
                "current": [{"category": c["category"], "category_label": CATEGORIES[c["category"]],
                             "region_code": c["region_code"], "since": c["since"].isoformat(),
                             "supply_mode": c["supply_mode"]} for c in current],
                "history": [{"category": r["category"], "category_label": CATEGORIES.get(r["category"], r["category"]),
                             "action": r["action"], "region_code": r["region_code"],
                             "valid_from": r["valid_from"].isoformat(),
                             "valid_to": r["valid_to"].isoformat() if r["valid_to"] else None,
                             "reason": r["reason"], "source_type": r["source_type"], "source_ref": r["source_ref"],
                             "recorded_at": r["recorded_at"].isoformat()} for r in rows]}

    async def set_supply_mode(self, person_id: str, mode: str, principal: Principal) -> dict[str, Any]:
        key = self.persons.key(person_id)
        async with self.runtime.uow() as tx:
            row = (await tx.session.execute(sa.select(R).where(R.c.person_id == key, R.c.category == "tekun")
                                            )).mappings().first()
            if row is None or not principal.covers(row["region_code"]):
                raise NotFound("no 特困 person with this id in your region")
            await tx.session.execute(R.update().where(R.c.person_id == key, R.c.category == "tekun")
                                     .values(supply_mode=mode, updated_at=self.clock()))
            await audit.record(tx.session, principal, "register.supply_mode_set", "person", key,
                               {"from": row["supply_mode"], "to": mode})
        return {"person_id": present_id(person_id, principal.role), "supply_mode": mode}

    async def potential(self, principal: Principal, *, region_code: str, after_id: int, limit: int) -> dict[str, Any]:
        ensure_region(principal, region_code)
        pc = potential_cases
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(
                sa.select(pc, sa.exists().where(R.c.person_id == pc.c.person_id,
                                                R.c.category.in_(("dibao", "tekun"))).label("covered_now"))
                .where(within(pc.c.region_code, region_prefix(region_code)), pc.c.id > after_id)
                .order_by(pc.c.id).limit(limit))).mappings().all()
            rows = await self.persons.rows_with_numbers(s, rows, "person_id")
        return {"rule": "M5", "region_code": region_code,
                "items": [{"id": r["id"], "person_id": present_id(r["person_id"], principal.role),
                           "region_code": r["region_code"], "case_id": r["case_id"], "source": r["source"],
                           "reason": r["reason"], "since": r["since"].isoformat(),
                           "covered_now": bool(r["covered_now"])} for r in rows],
                "next_after": rows[-1]["id"] if len(rows) == limit else None}

    # -- T3 visits --------------------------------------------------------------------------
    async def record_visit(self, principal: Principal, *, person_id: str, visited_on: date, method: str,
                           note: str | None) -> dict[str, Any]:
        now = self.clock()
        if visited_on > to_shanghai_date(now):
            raise InvalidInput.field("visited_on", "is in the future")
        key = self.persons.key(person_id)
        async with self.runtime.uow() as tx:
            row = (await tx.session.execute(sa.select(R).where(R.c.person_id == key, R.c.category == "tekun")
                                            )).mappings().first()
            if row is None or not principal.covers(row["region_code"]):
                raise InvalidInput.field("person_id", "is not a 特困 person in your region's register")
            vid = (await tx.session.execute(tekun_visits.insert().values(
                person_id=key, region_code=row["region_code"], visited_on=visited_on, method=method, note=note,
                visited_by=principal.sub, visited_by_name=principal.name, visited_by_role=principal.role,
                recorded_at=now).returning(tekun_visits.c.id))).scalar_one()
            await audit.record(tx.session, principal, "tekun.visited", "person", key,
                               {"visit_id": vid, "visited_on": visited_on.isoformat(), "method": method})
        return {"visit_id": vid, "rule": "T3", "person_id": present_id(person_id, principal.role),
                "region_code": row["region_code"], "visited_on": visited_on.isoformat(), "method": method,
                "supply_mode": row["supply_mode"], "visited_by": principal.sub}
