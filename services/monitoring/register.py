"""M1 the 7-category register (fed by eligibility's decisions and partner data), its append-only
history, M5 potential cases, and T3 visits to dispersed 特困 persons."""
from __future__ import annotations

from dataclasses import dataclass
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
from shared.db import InsertIgnoring

R, H = register, register_history

_CURRENT = (sa.select(R.c.person_id, R.c.category, R.c.region_code, R.c.since)
            .where(R.c.person_id.in_(sa.bindparam("keys", expanding=True))))
_ENTER = R.insert()
_LEAVE = R.delete().where(R.c.person_id == sa.bindparam("key"), R.c.category == sa.bindparam("cat"))
_MOVE = (R.update().where(R.c.person_id == sa.bindparam("key"), R.c.category == sa.bindparam("cat"))
         .values(region_code=sa.bindparam("region"), updated_at=sa.bindparam("at")))
_HISTORY = H.insert()
_ADD_UNIT = InsertIgnoring(reporting_units)
_ADD_POTENTIAL = InsertIgnoring(potential_cases)


@dataclass(frozen=True)
class ChangeSource:
    """One event's register changes and where they come from."""
    changes: list[Change]
    region_code: str
    source_type: str
    source_ref: str


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
        return await self.apply_all(tx, [ChangeSource(changes, region_code, source_type, source_ref)])

    async def apply_all(self, tx: UnitOfWork, sources: list[ChangeSource]) -> int:
        """The changes of several events, in order, as if each had been applied on its own:
        one vault call, one read of the rows they touch, then one executemany per kind of
        write. Returns how many changes took effect."""
        now = self.clock()
        s = tx.session
        # the rows hold person keys; the numbers go to the vault (shown to staff, put on events)
        keys = await self.persons.keep(s, [c.person_id for src in sources for c in src.changes])
        if not keys:
            return 0
        found = await s.execute(_CURRENT, {"keys": list(set(keys.values()))})
        # (key, category) → (region_code, since) as the register stands after each change so far
        current: dict[tuple[str, str], tuple[str, date]] = {
            (r.person_id, r.category): (r.region_code, r.since) for r in found}
        left: dict[tuple[str, str], None] = {}  # rows stored before this run that it deletes
        entered: dict[tuple[str, str], dict[str, Any]] = {}  # rows this run inserts, as they end up
        moved: dict[tuple[str, str], str] = {}  # rows stored before (and kept) that move region
        history: list[dict[str, Any]] = []
        units: dict[str, date] = {}  # the first insert of a region is the one that counts
        applied = 0

        def record(key: tuple[str, str], region: str, action: str, valid_from: date, valid_to: date | None,
                   reason: str, src: ChangeSource) -> None:
            history.append({"person_id": key[0], "category": key[1], "region_code": region, "action": action,
                            "valid_from": valid_from, "valid_to": valid_to, "reason": reason[:200],
                            "source_type": src.source_type, "source_ref": src.source_ref, "recorded_at": now})

        for src in sources:
            region = src.region_code
            for c in src.changes:
                key = (keys[c.person_id], c.category)
                held = current.get(key)
                if c.action == "enter":
                    if held is not None:
                        if held[0] != region:  # moved: the same category, a new place
                            current[key] = (region, held[1])
                            if key in entered:
                                entered[key]["region_code"] = region
                            else:
                                moved[key] = region
                            record(key, held[0], "leave", held[1], c.on, f"moved to {region}", src)
                            record(key, region, "enter", c.on, None, c.reason, src)
                            applied += 1
                        continue
                    current[key] = (region, c.on)
                    entered[key] = {"person_id": key[0], "category": key[1], "region_code": region, "since": c.on,
                                    "supply_mode": "dispersed" if c.category == "tekun" else None,
                                    "source_type": src.source_type, "source_ref": src.source_ref, "updated_at": now}
                    record(key, region, "enter", c.on, None, c.reason, src)
                    units.setdefault(region, c.on)
                    applied += 1
                elif held is not None:
                    del current[key]
                    if entered.pop(key, None) is None:  # a row entered in this run is simply not written
                        left[key] = None
                        moved.pop(key, None)
                    record(key, held[0], "leave", held[1], c.on, c.reason, src)
                    applied += 1
        # deletes before inserts: a row that left and entered again in this run is a new row
        if left:
            await s.execute(_LEAVE, [{"key": k, "cat": cat} for k, cat in sorted(left)])
        if entered:
            await s.execute(_ENTER, list(entered.values()))
        if moved:
            await s.execute(_MOVE, [{"key": k, "cat": cat, "region": r, "at": now}
                                    for (k, cat), r in sorted(moved.items())])
        if history:
            await s.execute(_HISTORY, history)
        await _ADD_UNIT.execute(s, [{"region_code": r, "source": "register", "first_seen": on} for r, on in units.items()])
        return applied

    # -- events ----------------------------------------------------------------------------
    async def on_decision_made(self, tx: UnitOfWork, env: Envelope, data: DecisionMade) -> None:
        await self.on_decisions_made(tx, [(env, data)])

    async def on_decisions_made(self, tx: UnitOfWork, events: list[tuple[Envelope, DecisionMade]]) -> None:
        """M1 for a run of decisions (set-based, see apply_all); M5: a denied 低保 applicant in
        the marginal band is kept on file once per decision."""
        sources: list[ChangeSource] = []
        potential: list[dict[str, Any]] = []
        for env, data in events:
            changes = decision_changes(data, self.marginal_multiplier)
            sources.append(ChangeSource(changes, data.region_code, data.TYPE, env.id))
            if any(c.category == "marginal" and c.action == "enter" for c in changes):
                potential.append({
                    "dedupe_key": f"decision:{data.decision_id}",
                    "person_id": self.persons.key(data.applicant_person_id), "region_code": data.region_code,
                    "case_id": data.case_id, "source": "denied_marginal",
                    "reason": "低保申请未通过，家庭月人均收入在低保标准与边缘线之间（M5）", "since": data.effective_from})
        await self.apply_all(tx, sources)
        if potential:
            now = self.clock()
            await _ADD_POTENTIAL.execute(tx.session, [dict(p, recorded_at=now) for p in potential])

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
