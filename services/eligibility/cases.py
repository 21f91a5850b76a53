"""Case use cases: open a case per accepted application, run the means test (经济状况核对) from
the partners' answers and clerks' entries, and propose a decision with its full trace.

Statuses: ``verifying`` (opened; the background worker asks the partners) →
``awaiting_verification`` (some source has not answered: not configured, timed out, failed —
``pending_sources`` and ``verification`` say which and why; a clerk may record it by hand) →
``proposed`` (every source answered; the engine's proposal waits for an officer) →
``decided``. ``awaiting_policy``: no 低保 standard in force for the region (retried when a
policy is published); ``blocked``: the engine refused the stored inputs (notes say why).
Nothing is ever approved without every required source and an officer's decision.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, region_covers
from shared.db import by_columns, one_of
from shared.errors import InvalidInput, NotFound
from shared.events.eligibility import CaseOpened
from shared.events.intake import ApplicationSubmitted
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork
from shared.money import format_yuan
from shared.pii import PersonVault, swap
from shared.privacy import present_id
from shared.runtime import ServiceRuntime

from services.eligibility import audit
from services.eligibility.assessments import mask_assessment, stale_reason
from services.eligibility.domain.changes import marginal_band
from services.eligibility.domain.inputs import request_from_json, request_json
from services.eligibility.domain.means_test import SOURCE_LABELS, Fact, apply_facts, required_sources
from services.eligibility.domain.rules import InvalidRequest, assess
from services.eligibility.models import benefits, case_facts, cases, person_vault
from services.eligibility.policies import PolicyService, today
from services.eligibility.schemas import FactIn
from services.eligibility.settings import Settings

OPEN_STATUSES = ("verifying", "awaiting_verification")
FACT_ROLES = ("township_clerk", "township_office_director", "county_civil_affairs", "partner_system")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


async def lock_case(session: AsyncSession, case_id: str,
                    columns: tuple[str, ...] | None = None) -> Mapping[str, Any] | None:
    """The case row (or only ``columns`` of it), locked for this transaction. On SQLite a no-op
    write comes first so the transaction holds the write lock before it reads (no
    stale-snapshot upgrade failures)."""
    what = [cases.c[c] for c in columns] if columns else [cases]
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        await session.execute(sa.update(cases).where(cases.c.id == case_id).values(updated_at=cases.c.updated_at))
        q = sa.select(*what).where(cases.c.id == case_id)
    else:
        q = sa.select(*what).where(cases.c.id == case_id).with_for_update()
    return (await session.execute(q)).mappings().first()


async def lock_cases(session: AsyncSession, case_ids: list[str],
                     columns: tuple[str, ...]) -> dict[str, Mapping[str, Any]]:
    """``columns`` of several cases (PostgreSQL), locked in id order: two groups locking
    overlapping cases cannot deadlock. One statement whatever their number."""
    q = (sa.select(*[cases.c[c] for c in columns]).where(one_of(cases.c.id, sorted(set(case_ids)), postgres=True))
         .order_by(cases.c.id).with_for_update())
    return {r["id"]: r for r in (await session.execute(q)).mappings().all()}


def policy_region(row: Mapping[str, Any]) -> str:
    """临时救助 follows the place of the emergency (L1: the handling township); 低保/特困 the residence."""
    return row["handling_region_code"] if row["program"] == "linshi" else row["region_code"]


def visible(principal: Principal, row: Mapping[str, Any]) -> bool:
    return region_covers(principal.region, row["region_code"]) or region_covers(principal.region,
                                                                                row["handling_region_code"])


class CaseService:
    def __init__(self, runtime: ServiceRuntime, settings: Settings | None = None,
                 policies: PolicyService | None = None) -> None:
        self.runtime = runtime
        self.settings = settings or Settings()
        self.policies = policies or PolicyService(runtime, self.settings)
        self.persons = PersonVault(self.settings.data_encryption_key, person_vault)
        self.wake: Callable[[], None] = lambda: None
        self.reevaluate_case: Any = None  # set by the composition root (ReevaluationService.reevaluate_case)

    # -- events ----------------------------------------------------------------------------------
    async def on_application_submitted(self, tx: UnitOfWork, env: Envelope, data: ApplicationSubmitted) -> None:
        await self.on_applications_submitted(tx, [(env, data)])

    async def on_applications_submitted(self, tx: UnitOfWork,
                                        events: list[tuple[Envelope, ApplicationSubmitted]]) -> None:
        """One case per application, for a run of events set-based: one look-up of the
        applications that already have a case, one multi-row insert, one outbox row each.
        A programme that needs no partner source (临时救助, L3) gets its proposal here, in the
        same transaction: the verifier would have nothing to ask, only a hop to wait for."""
        ids = {data.application_id for _, data in events}
        # On PostgreSQL the batch's writes (vault, cases, outbox) go out as one statement whatever
        # the batch's size (shared/writes.py RowSets), and the look-up is one statement too.
        pg = tx.session.bind is not None and tx.session.bind.dialect.name == "postgresql"
        wanted = one_of(cases.c.application_id, sorted(ids), postgres=pg)
        existing = set((await tx.session.execute(sa.select(cases.c.application_id).where(wanted))).scalars())
        now = utcnow()
        todo: list[tuple[Envelope, ApplicationSubmitted]] = []
        snap = None
        for env, data in events:
            if data.application_id in existing:
                continue  # the same application re-sent under a new event id: still one case
            existing.add(data.application_id)
            todo.append((env, data))
        if not todo:
            return
        # from here on the cases know their people by key; the numbers go to the vault
        households = [data.household.model_dump(mode="json") for _, data in todo]
        keys = await self.persons.keep(tx.session, [m["person_id"] for h in households for m in h["members"]]
                                       + [data.applicant_person_id for _, data in todo], rows=tx.rows if pg else None)
        rows: list[dict[str, Any]] = []
        for (env, data), household in zip(todo, households):
            case_id = str(uuid.uuid4())
            rows.append(dict(
                id=case_id, application_id=data.application_id, channel=data.channel, program=data.program,
                region_code=data.region_code, handling_region_code=data.handling_region_code, area=data.area,
                applicant_person_id=keys[data.applicant_person_id], household=swap(household, keys),
                hardship=data.hardship.model_dump(mode="json") if data.hardship else None, status="verifying",
                received_at=data.received_at, opened_at=now, updated_at=now,
                pending_sources=list(required_sources(data.program)), verification={}, next_check_at=now,
                check_rounds=0))
            if not required_sources(data.program):
                if snap is None:  # one look at the published versions for the whole batch
                    snap = await self.policies.snapshot(tx.session)
                rows[-1].update(next_check_at=None)
                rows[-1].update(await self.proposal_values(rows[-1], [], now, session=tx.session, snap=snap))
            tx.emit(CaseOpened(
                case_id=case_id, application_id=data.application_id, channel=data.channel, program=data.program,
                region_code=data.region_code, handling_region_code=data.handling_region_code,
                applicant_person_id=data.applicant_person_id, household_size=len(data.household.members),
                received_at=data.received_at, opened_at=now), subject=data.application_id,
                correlation_id=env.correlation_id)
        if pg:
            for row in rows:
                tx.rows.insert(cases, row)
        else:
            for same in by_columns(rows):
                await tx.session.execute(cases.insert(), same)
        if any(r["status"] == "verifying" for r in rows):
            # The partners are asked by the background worker, outside this transaction; nudge
            # it right after the commit (its poll is the safety net).
            tx.after_commit(self.wake)

    # -- facts -------------------------------------------------------------------------------------
    async def facts_of(self, session: AsyncSession, case_id: str) -> list[Fact]:
        rows = (await session.execute(sa.select(case_facts).where(case_facts.c.case_id == case_id)
                                      .order_by(case_facts.c.seq))).mappings().all()
        return [Fact(r["source"], r["assets_within_limits"],
                     {k: Decimal(v) for k, v in (r["monthly_incomes"] or {}).items()}, r["origin"], r["seq"])
                for r in rows]

    async def _insert_fact(self, session: AsyncSession, case_id: str, source: str, origin: str,
                           assets: bool | None, incomes: Mapping[str, Decimal], summary: str | None,
                           reference: str | None, actor: audit.Actor, now: datetime) -> None:
        await session.execute(case_facts.insert().values(
            case_id=case_id, source=source, origin=origin, assets_within_limits=assets,
            monthly_incomes={k: format_yuan(v) for k, v in incomes.items()}, summary=summary, reference=reference,
            recorded_at=now, recorded_by_sub=actor.sub, recorded_by_name=actor.name, recorded_by_role=actor.role))

    async def apply_round(self, case_id: str, answers: list[dict[str, Any]], failures: dict[str, dict[str, Any]],
                          not_configured: list[str]) -> str | None:
        """Store one verification round's answers (the HTTP calls happened before, outside any
        transaction) and move the case on. Returns the new status."""
        now = utcnow()
        async with self.runtime.uow() as tx:
            row = await lock_case(tx.session, case_id)
            if row is None or row["status"] not in OPEN_STATUSES:
                return None if row is None else row["status"]  # completed meanwhile by hand
            log = dict(row["verification"] or {})
            still = set(row["pending_sources"] if row["pending_sources"] is not None
                        else required_sources(row["program"]))
            # A source recorded meanwhile (by a clerk) keeps its entry: late answers are not applied.
            answers = [a for a in answers if a["source"] in still]
            # partners answer by number; the facts are stored by person key
            answers = [{**a, "monthly_incomes": {self.persons.key(k): v for k, v in a["monthly_incomes"].items()}}
                       for a in answers]
            failures = {k: v for k, v in failures.items() if k in still}
            not_configured = [k for k in not_configured if k in still]
            for a in answers:
                actor = audit.Actor(f"partner:{a['source']}", SOURCE_LABELS[a["source"]], "partner_system")
                await self._insert_fact(tx.session, case_id, a["source"], "partner", a["assets_within_limits"],
                                        a["monthly_incomes"], a.get("summary"), a.get("reference"), actor, now)
                log[a["source"]] = {"state": "answered", "detail": a.get("summary"), "at": now.isoformat(),
                                    "attempts": int(log.get(a["source"], {}).get("attempts", 0)) + a.get("attempts", 1)}
            for source, f in failures.items():
                log[source] = {"state": f["state"], "detail": f["detail"], "at": now.isoformat(),
                               "attempts": int(log.get(source, {}).get("attempts", 0)) + f.get("attempts", 1)}
            for source in not_configured:
                log[source] = {"state": "not_configured", "at": now.isoformat(), "attempts": 0,
                               "detail": "no partner endpoint is configured (PARTNER_VERIFICATION_URLS): "
                                         "a township clerk records this source's result (POST /v1/cases/{id}/facts)"}
            rounds = int(row["check_rounds"] or 0) + 1
            values: dict[str, Any] = {"verification": log, "check_rounds": rounds, "updated_at": now}
            retry = bool(failures) and rounds < self.settings.verification_max_rounds
            values["next_check_at"] = (now + timedelta(seconds=min(self.settings.verification_retry_s * 2 ** (rounds - 1),
                                                                    86400.0)) if retry else None)
            status = await self._after_facts(tx, row, values, now, trigger=None)
            await tx.session.execute(sa.update(cases).where(cases.c.id == case_id).values(**values))
            return status

    async def record_fact(self, case_id: str, body: FactIn, principal: Principal) -> dict[str, Any]:
        """POST /v1/cases/{id}/facts: a clerk (or a partner system) records one source's result."""
        now = utcnow()
        actor = audit.Actor(principal.sub, principal.name, principal.role)
        result: dict[str, Any] = {}
        async with self.runtime.uow() as tx:
            row = await lock_case(tx.session, case_id)
            if row is None or not visible(principal, row):
                raise NotFound(f"case {case_id} not found")
            members = {m["person_id"] for m in row["household"]["members"]}  # person keys
            incomes = {self.persons.key(pid): v for pid, v in body.monthly_incomes.items()}
            bad = [{"field": f"monthly_incomes.{present_id(pid, '')}", "message": "not a member of this case's household"}
                   for pid in body.monthly_incomes if self.persons.key(pid) not in members]
            if bad:
                raise InvalidInput("; ".join(e["field"] + ": " + e["message"] for e in bad), errors=bad)
            origin = "partner" if principal.role == "partner_system" else "manual"
            await self._insert_fact(tx.session, case_id, body.source, origin, body.assets_within_limits,
                                    incomes, body.summary, body.reference, actor, now)
            log = dict(row["verification"] or {})
            log[body.source] = {"state": "answered", "detail": body.summary, "at": now.isoformat(),
                                "attempts": int(log.get(body.source, {}).get("attempts", 0)), "origin": origin,
                                "by": principal.sub}
            values: dict[str, Any] = {"verification": log, "updated_at": now}
            status = await self._after_facts(tx, row, values, now, trigger=body.source, actor=actor, result=result)
            await tx.session.execute(sa.update(cases).where(cases.c.id == case_id).values(**values))
            await audit.append(tx.session, actor, "case.fact_recorded", "case", case_id,
                               {"source": body.source, "origin": origin, "assets_within_limits": body.assets_within_limits,
                                "incomes": {present_id(k, ""): format_yuan(v) for k, v in body.monthly_incomes.items()},
                                "reference": body.reference, "status": status})
        if principal.role == "partner_system":  # a partner gets an acknowledgement, not the case file
            return {"case_id": case_id, "source": body.source, "recorded": True, "status": status}
        out = await self.get(case_id, principal)
        if result.get("change") is not None or "reevaluation" in result:
            out["reevaluation"] = result.get("reevaluation")
        return out

    async def _after_facts(self, tx: UnitOfWork, row: Mapping[str, Any], values: dict[str, Any], now: datetime,
                           trigger: str | None, actor: audit.Actor | None = None,
                           result: dict[str, Any] | None = None) -> str:
        """After new facts: recompute what is pending; propose when complete; re-evaluate a
        decided case's benefit (item 5: a partner fact changed)."""
        status = row["status"]
        facts = await self.facts_of(tx.session, row["id"])
        answered = {f.source for f in facts}
        pending = [s for s in required_sources(row["program"]) if s not in answered]
        if status == "decided":
            if trigger is not None and self.reevaluate_case is not None:
                outcome = await self.reevaluate_case(tx, row, facts, trigger=trigger, actor=actor or audit.SYSTEM)
                if result is not None:
                    result["reevaluation"] = outcome
                    result["change"] = outcome.get("change") if outcome else None
            return status
        values["pending_sources"] = pending
        if pending:
            values["status"] = "awaiting_verification"
            return "awaiting_verification"
        values["next_check_at"] = None
        values.update(await self.proposal_values(row, facts, now, session=tx.session))
        return values["status"]

    # -- the proposal ------------------------------------------------------------------------------
    async def proposal_values(self, row: Mapping[str, Any], facts: list[Fact], now: datetime, *,
                              session: AsyncSession | None = None, snap: Any = None) -> dict[str, Any]:
        """The engine's proposed decision with its full trace (the case's inputs after the means
        test, the policy in force today for the case's region)."""
        program = row["program"]
        mt = apply_facts(row["household"], facts)
        as_of = today()
        region = policy_region(row)
        if snap is None:
            res, policy, snap = await self.policies.resolved(region, as_of, session=session)
        else:  # the caller read the published versions once for a whole batch
            res, policy = self.policies.resolve_in(snap, region, as_of)
        base: dict[str, Any] = {"proposal_as_of": as_of, "proposal_at": now}
        if policy is None:
            return {**base, "status": "awaiting_policy", "proposal": None, "proposal_inputs": None,
                    "proposal_policy_version": None, "proposal_policy_sources": None, "proposal_policy_seq": None,
                    "proposal_stale": None,
                    "proposal_notes": mt.notes + [f"no complete policy in force for {region} on {as_of}: missing "
                                                  f"{', '.join(res.missing)} (D1; the county publishes its standards)"]}
        inputs = request_json(program=program, area=row["area"], as_of=as_of, region_code=region,
                              household=mt.household, hardship=row["hardship"])
        try:
            result = assess(request_from_json(inputs), policy)
        except InvalidRequest as exc:
            return {**base, "status": "blocked", "proposal": None, "proposal_inputs": inputs,
                    "proposal_notes": mt.notes + [f"{f}: {m}" for f, m in exc.errors]}
        notes = list(mt.notes)
        p = policy.params
        if program == "dibao" and result.outcome == "denied" and mt.assets_within_limits:
            standard = p.dibao_standard_urban if row["area"] == "urban" else p.dibao_standard_rural
            hh = mt.household
            if marginal_band(incomes=[Decimal(m["monthly_income"]) for m in hh["members"]],
                             rigid=Decimal(hh.get("rigid_expenses_monthly", "0")),
                             employment=Decimal(hh.get("employment_costs_monthly", "0")),
                             standard=standard, multiplier=p.marginal_multiplier):
                notes.append("M5: 家庭月人均收入不低于低保标准但低于其 "
                             f"{p.marginal_multiplier} 倍，属低保边缘家庭，纳入低收入人口动态监测（M5）")
        stale = self.policies.stale(policy, as_of)
        if stale:
            notes.append(stale_reason(policy.standard_adjusted_on, self.settings.stale_standard_months)["text"])
        return {**base, "status": "proposed", "proposal": result.to_dict(), "proposal_inputs": inputs,
                "proposal_policy_version": policy.version_id, "proposal_policy_sources": dict(res.sources),
                "proposal_policy_seq": snap.max_seq, "proposal_stale": stale, "proposal_notes": notes}

    async def refresh_proposal(self, case_id: str) -> bool:
        """Recompute a waiting proposal (after a policy publication). True when it changed."""
        now = utcnow()
        async with self.runtime.uow() as tx:
            row = await lock_case(tx.session, case_id)
            if row is None or row["status"] not in ("proposed", "awaiting_policy"):
                return False
            facts = await self.facts_of(tx.session, case_id)
            values = await self.proposal_values(row, facts, now, session=tx.session)
            changed = (values.get("proposal") != row["proposal"] or values["status"] != row["status"]
                       or values.get("proposal_policy_version") != row["proposal_policy_version"])
            values["updated_at"] = now
            await tx.session.execute(sa.update(cases).where(cases.c.id == case_id).values(**values))
            return changed

    # -- reads -------------------------------------------------------------------------------------
    async def get(self, case_id: str, principal: Principal) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            row = (await s.execute(sa.select(cases).where(cases.c.id == case_id))).mappings().first()
            if row is None or not visible(principal, row):
                raise NotFound(f"case {case_id} not found")
            fact_rows = (await s.execute(sa.select(case_facts).where(case_facts.c.case_id == case_id)
                                         .order_by(case_facts.c.seq))).mappings().all()
            benefit = (await s.execute(sa.select(benefits).where(benefits.c.case_id == case_id))).mappings().first()
            # the view is built from the numbers (shown or masked by role), decrypted in memory
            row, fact_rows, benefit = await self.persons.plain(
                s, dict(row), [dict(f) for f in fact_rows], None if benefit is None else dict(benefit))
        role = principal.role
        show = lambda pid: present_id(pid, role)  # noqa: E731
        facts = [Fact(r["source"], r["assets_within_limits"],
                      {k: Decimal(v) for k, v in (r["monthly_incomes"] or {}).items()}, r["origin"], r["seq"])
                 for r in fact_rows]
        means = None
        if facts or not row["pending_sources"]:
            mt = apply_facts(row["household"], facts)
            means = {"assets_within_limits": mt.assets_within_limits,
                     "monthly_incomes": {show(k): format_yuan(v) for k, v in mt.incomes.items()},
                     "notes": mt.notes}
        proposal = None
        if row["proposal"] is not None or row["status"] in ("awaiting_policy", "blocked"):
            proposal = {
                "assessment": mask_assessment(row["proposal"], role) if row["proposal"] else None,
                "as_of": row["proposal_as_of"].isoformat() if row["proposal_as_of"] else None,
                "policy_version": row["proposal_policy_version"],
                "policy_stale": row["proposal_stale"],
                "approval_level": (row["proposal"] or {}).get("approval_level"),
                "notes": row["proposal_notes"] or [],
                "computed_at": row["proposal_at"].isoformat() if row["proposal_at"] else None,
            }
        return {
            "case_id": row["id"], "application_id": row["application_id"], "status": row["status"],
            "program": row["program"], "channel": row["channel"], "region_code": row["region_code"],
            "handling_region_code": row["handling_region_code"], "area": row["area"],
            "applicant_person_id": show(row["applicant_person_id"]),
            "household_size": len(row["household"]["members"]),
            "received_at": row["received_at"].isoformat(), "opened_at": row["opened_at"].isoformat(),
            "pending_sources": list(row["pending_sources"] or []),
            "verification": row["verification"] or {},
            "facts": [{"source": r["source"], "origin": r["origin"], "assets_within_limits": r["assets_within_limits"],
                       "monthly_incomes": {show(k): v for k, v in (r["monthly_incomes"] or {}).items()},
                       "summary": r["summary"], "reference": r["reference"], "recorded_at": r["recorded_at"].isoformat(),
                       "recorded_by": {"sub": r["recorded_by_sub"], "name": r["recorded_by_name"],
                                       "role": r["recorded_by_role"]}} for r in fact_rows],
            "means_test": means,
            "proposal": proposal,
            "decision_id": row["decision_id"],
            "benefit": None if benefit is None else {
                "status": benefit["status"], "outcome": benefit["outcome"],
                "monthly_amount": _yuan(benefit["monthly_fen"]),
                "exit_until": benefit["exit_until"].isoformat() if benefit["exit_until"] else None,
                "covered_person_ids": [show(p) for p in benefit["covered"]],
                "policy_version": benefit["policy_version"], "decision_id": benefit["decision_id"],
                "overridden": benefit["overridden"], "review_needed": benefit["review_needed"]},
        }


def _yuan(f: int | None) -> str | None:
    return None if f is None else format_yuan(Decimal(f).scaleb(-2))
