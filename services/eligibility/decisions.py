"""Decisions: 审核确认 by an officer (confirm or override, D6/L4), and replay.

* ``POST /v1/cases/{id}/decision`` — on a ``proposed`` case. The approval level is the
  proposal's (D6 for 低保/特困, L4 by amount for 临时救助); an override of a 临时救助 amount
  above the township limit needs the county. Township level: ``township_clerk``,
  ``township_office_director`` (and ``county_civil_affairs``, the higher authority); county
  level: ``county_civil_affairs`` only. An override needs a reason; both actions are audited
  (who, role, when, reason) and emit ``eligibility.decision.made`` in the same transaction.
  A paid 低保/特困 outcome starts a ``benefits`` row (what re-evaluation recomputes).
* ``POST /v1/decision-batches`` — 批量审核: several cases of a work list in one request, each
  decided and answered as by its own ``POST /v1/cases/{id}/decision``.
* Every decision stores its inputs, the engine's full trace (the Assessment dict), the policy
  version and sources, the as-of date and the policy publication sequence it saw, so
  ``GET /v1/decisions/{id}/replay`` recomputes it from the versions in force then.
"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Awaitable, Mapping

import sqlalchemy as sa

from shared.auth import Principal
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound, ProblemError, problem_of
from shared.events.eligibility import DecisionMade
from shared.group_commit import GroupCommit
from shared.logging import correlation_id_var, get_logger
from shared.money import format_yuan
from shared.pii import PersonVault, looks_like_key, strings_in, swap
from shared.privacy import FULL_ID_ROLES, present_id
from shared.runtime import ServiceRuntime
from shared.writes import RowSets, Writes

from services.eligibility import audit
from services.eligibility.assessments import mask_assessment
from services.eligibility.cases import lock_case, lock_cases, utcnow, visible
from services.eligibility.domain.changes import exit_until, fen
from services.eligibility.domain.inputs import request_from_json
from services.eligibility.domain.rules import InvalidRequest, assess
from services.eligibility.models import benefit_households, benefits, cases, decisions
from services.eligibility.policies import PolicyService, today
from services.eligibility.schemas import DecisionBatchItem, DecisionIn

# What a decision reads of its case (the household and verification documents are not re-read).
DECISION_COLUMNS = ("id", "application_id", "channel", "program", "region_code", "handling_region_code", "area",
                    "applicant_person_id", "status", "received_at", "pending_sources", "proposal", "proposal_inputs",
                    "proposal_as_of", "proposal_policy_version", "proposal_policy_sources", "proposal_policy_seq",
                    "proposal_notes")
PAID = ("approved", "single_person", "gradual_exit")
TOWNSHIP_DECIDERS = ("township_clerk", "township_office_director", "county_civil_affairs")
COUNTY_DECIDERS = ("county_civil_affairs",)
OUTCOMES = {"dibao": ("approved", "single_person", "gradual_exit", "denied", "transferred"),
            "tekun": ("approved", "denied", "transferred"),
            "linshi": ("approved", "denied", "transferred")}


log = get_logger("eligibility.decisions")


@dataclass(frozen=True)
class DecisionRequest:
    """One officer's ``POST /v1/cases/{id}/decision`` after its body checks."""
    case_id: str
    body: DecisionIn
    principal: Principal
    correlation_id: str | None
    summary: bool = False  # answered with the decision's summary (批量审核), not its full record


@dataclass(frozen=True)
class Plan:
    """A decision checked against its locked case, before anything is written."""
    request: DecisionRequest
    body: DecisionIn  # covered_person_ids as person keys
    row: Mapping[str, Any]
    final: dict[str, Any]
    level: str
    until: date | None
    reason_lines: list[str]
    decision_row: dict[str, Any]
    keys: list[str]
    now: datetime


async def _outcome(call: Awaitable[dict[str, Any]]) -> dict[str, Any] | BaseException:
    try:
        return await call
    except Exception as exc:
        return exc


def _err(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def _raise(errors: list[dict[str, str]]) -> None:
    if errors:
        raise InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)


def mask_ids(value: Any, role: str) -> Any:
    """Every ``person_id`` (and id list) inside stored inputs, masked for roles without the right."""
    if role in FULL_ID_ROLES:
        return value
    if isinstance(value, dict):
        return {k: (present_id(v, role) if k == "person_id" and isinstance(v, str) else mask_ids(v, role))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_ids(v, role) for v in value]
    return value


def _yuan(f: int | None) -> str | None:
    return None if f is None else format_yuan(Decimal(f).scaleb(-2))


class DecisionService:
    def __init__(self, runtime: ServiceRuntime, policies: PolicyService, persons: PersonVault) -> None:
        self.runtime = runtime
        self.policies = policies
        self.persons = persons  # stored rows hold person keys (shared/pii.py)
        self.group: GroupCommit[DecisionRequest, dict[str, Any]] | None = None
        settings = getattr(runtime, "settings", None)
        if getattr(settings, "decision_group_commit", False) and runtime.engine.dialect.name == "postgresql":
            self.group = GroupCommit(self._decide_group, writers=settings.decision_group_writers,  # type: ignore[union-attr]
                                     max_group=settings.decision_group_max,  # type: ignore[union-attr]
                                     name="decision-group")

    # -- decide --------------------------------------------------------------------------------
    async def decide(self, case_id: str, body: DecisionIn, principal: Principal) -> dict[str, Any]:
        return await self._submit(self._request(case_id, body, principal))

    async def decide_batch(self, items: list[DecisionBatchItem], principal: Principal) -> dict[str, Any]:
        """批量审核: each case of an officer's work list decided exactly as by its own
        ``POST /v1/cases/{id}/decision`` — the same checks, its own decision, event and audit
        entry — and answered in the batch's order with its own status: 201 and the decision's
        summary (``_summary``), the problem it alone was refused with, or 503 when it alone
        failed (nothing written for it in either case). A case named twice is decided once; the
        second is refused 409 as if it came after. On PostgreSQL the items join the decision
        group commit, so a batch costs a transaction or two, not one per case."""
        answers: list[dict[str, Any] | BaseException] = [RuntimeError("not decided")] * len(items)
        pending: list[tuple[int, DecisionRequest]] = []
        for i, item in enumerate(items):
            try:
                pending.append((i, self._request(item.case_id, item, principal, summary=True)))
            except ProblemError as exc:
                answers[i] = exc
        if self.group is not None:
            results = await asyncio.gather(*(self.group.submit(r) for _, r in pending), return_exceptions=True)
        else:
            results = [await _outcome(self._decide_alone(r)) for _, r in pending]
        for (i, _), result in zip(pending, results):
            answers[i] = result
        out = []
        for item, answer in zip(items, answers):
            if isinstance(answer, BaseException) and not isinstance(answer, ProblemError):
                # Not a refusal but a failure of this case alone (the others may be committed, so
                # failing the whole request would hide their answers): 503, nothing written for
                # it, and the officer's client sends this one again.
                log.error("decision_batch_item_failed", case_id=item.case_id, error=type(answer).__name__,
                          exc_info=answer)
                answer = ProblemError(f"case {item.case_id} was not decided (a failure on our side, "
                                      "nothing was written for it): send it again",
                                      status=503, title="Service unavailable")
            if isinstance(answer, ProblemError):
                out.append({"case_id": item.case_id, "status": answer.status, "problem": problem_of(answer)})
            else:
                out.append({"case_id": item.case_id, "status": 201, "decision": answer})
        decided = sum(1 for o in out if o["status"] == 201)
        return {"results": out, "decided": decided, "refused": len(out) - decided}

    async def _submit(self, request: DecisionRequest) -> dict[str, Any]:
        if self.group is not None:
            return await self.group.submit(request)
        return await self._decide_alone(request)

    def _request(self, case_id: str, body: DecisionIn, principal: Principal, *,
                 summary: bool = False) -> DecisionRequest:
        """The body's own checks (before any case is read)."""
        errors: list[dict[str, str]] = []
        if body.action == "confirm":
            for name in ("outcome", "monthly_amount", "one_time_amount", "covered_person_ids", "exit_months"):
                if getattr(body, name) is not None:
                    errors.append(_err(name, "only with action override"))
        else:
            if not (body.reason or "").strip():
                errors.append(_err("reason", "an override needs the reason (it is audited and shown)"))
            if body.outcome is None:
                errors.append(_err("outcome", "an override states the outcome"))
        _raise(errors)
        return DecisionRequest(case_id, body, principal, correlation_id_var.get(), summary)

    async def _decide_alone(self, request: DecisionRequest) -> dict[str, Any]:
        now, decided_on = utcnow(), today()
        async with self.runtime.uow() as tx:
            row = await lock_case(tx.session, request.case_id, columns=DECISION_COLUMNS)
            plan = await self._plan(tx.session, request, row, now, decided_on)
            # the event carries the numbers (payments and monitoring need them): from the vault
            numbers = await self.persons.reveal(tx.session, plan.keys)
            # The writes go at commit, with the event and the audit entry, in one statement
            # (shared/writes.py): this endpoint is on every case's path.
            view = await self._write(tx, tx.writes, plan, numbers)
        return view

    async def _decide_group(self, requests: list[DecisionRequest]) -> list[dict[str, Any] | BaseException]:
        """Concurrent decisions in one transaction (group commit, shared/group_commit.py): one
        lock of all their cases, one vault read, one statement with every decision's rows,
        events and audit entries (shared/writes.py ``RowSets``), one commit. Each request is
        checked exactly as alone, in arrival order: a refused one (404, 409, 403, 422) is
        answered its own problem and writes nothing; a second decision of a case already decided
        in the group is refused as if it came after. If the group's writes fail, each request is
        run alone, so one bad row never fails the others."""
        now, decided_on = utcnow(), today()
        out: list[dict[str, Any] | BaseException] = [RuntimeError("not decided")] * len(requests)
        try:
            async with self.runtime.uow() as tx:
                rows = await lock_cases(tx.session, [r.case_id for r in requests], DECISION_COLUMNS)
                plans: list[tuple[int, Plan]] = []
                for i, request in enumerate(requests):
                    row = rows.get(request.case_id)
                    try:
                        plan = await self._plan(tx.session, request, row, now, decided_on)
                    except ProblemError as exc:
                        out[i] = exc
                        continue
                    rows[request.case_id] = {**row, "status": "decided"}  # type: ignore[dict-item]
                    plans.append((i, plan))
                numbers = await self.persons.reveal(tx.session, [k for _, p in plans for k in p.keys])
                for i, plan in plans:
                    out[i] = await self._write(tx, tx.rows, plan, numbers)
        except Exception:
            # Nothing of the group was committed: each decision on its own, with its own answer.
            log.warning("decision_group_failed", size=len(requests), exc_info=True)
            return [await _outcome(self._decide_alone(r)) for r in requests]
        return out

    async def _plan(self, session: Any, request: DecisionRequest, row: Mapping[str, Any] | None,
                    now: datetime, decided_on: date) -> "Plan":
        """Every check of a decision on its locked case, and the decision row (no writes)."""
        case_id, body, principal = request.case_id, request.body, request.principal
        if row is None or not visible(principal, row):
            raise NotFound(f"case {case_id} not found")
        if row["status"] != "proposed":
            pending = ", ".join(row["pending_sources"] or []) or "none"
            raise Conflict(f"case {case_id} is {row['status']}, not proposed (pending sources: {pending}); "
                           "a decision needs a complete means test and a proposal",
                           extra={"case_status": row["status"], "pending_sources": row["pending_sources"] or []})
        proposal: dict[str, Any] = row["proposal"]
        program = row["program"]
        inputs: dict[str, Any] = row["proposal_inputs"]
        members = [m["person_id"] for m in inputs["household"]["members"]]  # person keys
        if body.covered_person_ids is not None:  # the officer names people by number
            body = body.model_copy(update={"covered_person_ids": [self.persons.key(p)
                                                                  for p in body.covered_person_ids]})
        # the policy the proposal was computed with (a later publication re-proposes the case)
        _, policy = await self.policies.as_of_publication(inputs["region_code"], row["proposal_as_of"],
                                                          row["proposal_policy_seq"], session=session)
        final = self._final(body, program, proposal, members, policy)
        level = proposal["approval_level"]
        if program == "linshi" and final["one_time"] is not None and policy is not None \
                and final["one_time"] > policy.params.linshi_township_limit:
            level = "county"  # L4: above the township's limit the county approves
        allowed = COUNTY_DECIDERS if level == "county" else TOWNSHIP_DECIDERS
        if principal.role not in allowed:
            raise Forbidden(f"this is a {level}-level decision ({'L4' if program == 'linshi' else 'D6'}); "
                            f"role '{principal.role}' may not take it; allowed: {', '.join(allowed)}")

        decision_id = str(uuid.uuid4())
        outcome = final["outcome"]
        until = exit_until(decided_on, final["exit_months"]) if outcome == "gradual_exit" else None
        reason_lines = [f"{r['code']}: {r['text']}" for r in proposal.get("reasons", [])]
        reason_lines += list(row["proposal_notes"] or [])
        if body.action == "override":
            reason_lines.append(f"OVERRIDE by {principal.role}: {body.reason.strip()}")  # type: ignore[union-attr]
        elif body.reason:
            reason_lines.append(f"NOTE by {principal.role}: {body.reason.strip()}")
        if final["transfer_department"]:
            reason_lines.append(f"I2: 转办 {final['transfer_department']}（I2、L5）")
        decision_row = dict(
            id=decision_id, kind="decision", case_id=case_id, reevaluation_id=None, action=body.action,
            outcome=outcome, change=None,
            monthly_fen=fen(final["monthly"]) if final["monthly"] is not None else None,
            one_time_fen=fen(final["one_time"]) if final["one_time"] is not None else None,
            old_monthly_fen=None, approval_level=level, exit_months=final["exit_months"], exit_until=until,
            covered=final["covered"], as_of=row["proposal_as_of"], effective_from=decided_on,
            policy_version=row["proposal_policy_version"], policy_sources=row["proposal_policy_sources"],
            policy_seq=row["proposal_policy_seq"], inputs=inputs, assessment=proposal,
            overridden=body.action == "override", reason=(body.reason or "").strip() or None,
            transfer_department=final["transfer_department"],
            staged_payments=[format_yuan(s) for s in final["staged"]] if final["staged"] else None,
            pay_first=final["pay_first"], decided_at=now, decided_by_sub=principal.sub,
            decided_by_name=principal.name, decided_by_role=principal.role)
        keys = [row["applicant_person_id"], *members] + sorted(strings_in(decision_row, looks_like_key))
        return Plan(request=request, body=body, row=row, final=final, level=level, until=until,
                    reason_lines=reason_lines, decision_row=decision_row, keys=keys, now=now)

    async def _write(self, tx: Any, sink: Writes | RowSets, plan: "Plan", numbers: Mapping[str, str]) -> dict[str, Any]:
        """A planned decision's rows, event and audit entry into ``sink``; its answer."""
        row, final, body, principal = plan.row, plan.final, plan.body, plan.request.principal
        case_id, now = plan.request.case_id, plan.now
        decision_row, decision_id = plan.decision_row, plan.decision_row["id"]
        program, outcome, inputs = row["program"], final["outcome"], row["proposal_inputs"]
        proposal = row["proposal"]
        sink.insert(decisions, decision_row)
        if program in ("dibao", "tekun") and outcome in PAID:
            sink.insert(benefits, dict(
                case_id=case_id, region_code=inputs["region_code"], program=program, area=row["area"],
                status="exiting" if outcome == "gradual_exit" else "active", outcome=outcome,
                monthly_fen=fen(final["monthly"]), exit_until=plan.until, covered=final["covered"],
                applicant_person_id=row["applicant_person_id"], overridden=body.action == "override",
                review_needed=False, decision_id=decision_id, policy_version=row["proposal_policy_version"],
                updated_at=now))
            sink.insert(benefit_households, dict(
                case_id=case_id, household=inputs["household"], household_ref=decision_id,
                numbers_enc=self.persons.seal_numbers(case_id, {k: numbers[k] for k in plan.keys if k in numbers})))
        sink.update(cases, {"id": case_id}, dict(status="decided", decision_id=decision_id, updated_at=now))
        tx.emit(DecisionMade(
            decision_id=decision_id, case_id=case_id, application_id=row["application_id"], program=program,
            channel=row["channel"], region_code=row["region_code"],
            handling_region_code=row["handling_region_code"],
            applicant_person_id=numbers[row["applicant_person_id"]],
            covered_person_ids=[numbers[p] for p in final["covered"]], outcome=outcome, monthly_amount=final["monthly"],
            one_time_amount=final["one_time"], approval_level=plan.level, exit_months=final["exit_months"],
            effective_from=decision_row["effective_from"], policy_version=row["proposal_policy_version"],
            received_at=row["received_at"], decided_at=now, decided_by=principal.sub,
            overridden=body.action == "override", transfer_department=final["transfer_department"],
            staged_payments=final["staged"], pay_first=final["pay_first"], reasons=plan.reason_lines),
            subject=row["application_id"], correlation_id=plan.request.correlation_id)
        actor = audit.Actor(principal.sub, principal.name, principal.role)
        await audit.append(tx.session, actor, f"case.decision.{body.action}", "case", case_id, {
            "decision_id": decision_id, "outcome": outcome, "approval_level": plan.level,
            "monthly_amount": format_yuan(final["monthly"]) if final["monthly"] is not None else None,
            "one_time_amount": format_yuan(final["one_time"]) if final["one_time"] is not None else None,
            "proposed_outcome": proposal["outcome"], "reason": (body.reason or "").strip() or None,
            "transfer_department": final["transfer_department"]}, at=now, writes=sink)
        if plan.request.summary:
            return self._summary(decision_row)
        # The answer is built from what was just stored (a second transaction re-reading it cost
        # a third of the endpoint); tests hold it equal to GET /v1/decisions/{id}.
        return self._view(swap(decision_row, numbers), row, principal.role)

    @staticmethod
    def _summary(row: Mapping[str, Any]) -> dict[str, Any]:
        """What a work list shows of a decision just taken; the whole record (trace, inputs) is
        ``GET /v1/decisions/{id}``. No person's number is in it, so no role needs masking."""
        return {"decision_id": row["id"], "action": row["action"], "outcome": row["outcome"],
                "monthly_amount": _yuan(row["monthly_fen"]), "one_time_amount": _yuan(row["one_time_fen"]),
                "approval_level": row["approval_level"], "overridden": row["overridden"],
                "transfer_department": row["transfer_department"], "pay_first": row["pay_first"],
                "decided_at": row["decided_at"].isoformat()}

    def _final(self, body: DecisionIn, program: str, proposal: Mapping[str, Any], members: list[str],
               policy: Any) -> dict[str, Any]:
        errors: list[dict[str, str]] = []
        if body.action == "confirm":
            outcome = proposal["outcome"]
            monthly = Decimal(proposal["monthly_amount"]) if program != "linshi" and outcome in PAID else None
            one_time = Decimal(proposal["one_time_amount"]) if program == "linshi" and outcome in PAID else None
            covered = list(proposal["covered_members"]) if outcome in PAID else []
            exit_months = proposal.get("exit_months")
        else:
            outcome = body.outcome
            if outcome not in OUTCOMES[program]:
                errors.append(_err("outcome", f"{program} outcomes are {', '.join(OUTCOMES[program])}"))
            paid = outcome in PAID
            monthly, one_time = body.monthly_amount, body.one_time_amount
            if paid and program != "linshi":
                if monthly is None or monthly <= 0:
                    errors.append(_err("monthly_amount", f"required (> 0) for a paid {program} outcome"))
                if one_time is not None:
                    errors.append(_err("one_time_amount", f"{program} pays a monthly amount"))
            elif paid:
                if one_time is None or one_time <= 0:
                    errors.append(_err("one_time_amount", "required (> 0) for approved linshi"))
                if monthly is not None:
                    errors.append(_err("monthly_amount", "linshi pays a one-time amount"))
            else:
                for name, v in (("monthly_amount", monthly), ("one_time_amount", one_time)):
                    if v is not None and v != 0:
                        errors.append(_err(name, f"no amount with outcome {outcome}"))
                monthly = one_time = None
            if body.covered_person_ids is not None:
                for i, pid in enumerate(body.covered_person_ids):
                    if pid not in members:
                        errors.append(_err(f"covered_person_ids.{i}", "not a member of this household"))
                covered = list(dict.fromkeys(body.covered_person_ids))
            else:
                covered = list(proposal["covered_members"]) or members
            if paid and not covered:
                errors.append(_err("covered_person_ids", "a paid outcome covers at least one person"))
            if not paid:
                covered = []
            exit_months = None
            if outcome == "gradual_exit":
                exit_months = body.exit_months or (policy.params.gradual_exit_months if policy else 6)
            elif body.exit_months is not None:
                errors.append(_err("exit_months", "only with outcome gradual_exit (D5)"))
        department = body.transfer_department
        if department is not None:
            if outcome in PAID:
                errors.append(_err("transfer_department", "a transfer (转办) goes with a denied or transferred outcome"))
            else:
                outcome = "transferred"
        if outcome == "transferred" and department is None:
            errors.append(_err("transfer_department", "required with outcome transferred (I2, L5)"))
        staged = list(body.staged_payments) if body.staged_payments else None
        if (staged or body.pay_first) and not (program == "linshi" and outcome == "approved"):
            errors.append(_err("staged_payments" if staged else "pay_first",
                               "staged payments and 先行救助 apply to approved linshi only (L4)"))
        elif staged and sum(staged, Decimal(0)) != one_time:
            errors.append(_err("staged_payments", f"the stages must add up to the one-time amount "
                                                  f"{format_yuan(one_time) if one_time is not None else '—'}"))
        _raise(errors)
        return {"outcome": outcome, "monthly": monthly, "one_time": one_time, "covered": covered,
                "exit_months": exit_months, "transfer_department": department, "staged": staged,
                "pay_first": bool(body.pay_first)}

    # -- reads ---------------------------------------------------------------------------------
    async def _load(self, decision_id: str, principal: Principal) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        async with self.runtime.session_factory() as s:
            row = (await s.execute(sa.select(decisions).where(decisions.c.id == decision_id))).mappings().first()
            case = None
            if row is not None:
                case = (await s.execute(sa.select(cases).where(cases.c.id == row["case_id"]))).mappings().first()
        if row is None or case is None or not visible(principal, case):
            raise NotFound(f"decision {decision_id} not found")
        return row, case

    async def get(self, decision_id: str, principal: Principal) -> dict[str, Any]:
        row, case = await self._load(decision_id, principal)
        async with self.runtime.session_factory() as s:
            row, case = await self.persons.plain(s, dict(row), dict(case))
        return self._view(row, case, principal.role)

    def _view(self, row: Mapping[str, Any], case: Mapping[str, Any], role: str) -> dict[str, Any]:
        return {
            "decision_id": row["id"], "kind": row["kind"], "case_id": row["case_id"],
            "application_id": case["application_id"], "program": case["program"],
            "reevaluation_id": row["reevaluation_id"], "action": row["action"], "outcome": row["outcome"],
            "change": row["change"], "monthly_amount": _yuan(row["monthly_fen"]),
            "one_time_amount": _yuan(row["one_time_fen"]), "old_monthly_amount": _yuan(row["old_monthly_fen"]),
            "approval_level": row["approval_level"], "exit_months": row["exit_months"],
            "exit_until": row["exit_until"].isoformat() if row["exit_until"] else None,
            "covered_person_ids": [present_id(p, role) for p in (row["covered"] or [])],
            "as_of": row["as_of"].isoformat(), "effective_from": row["effective_from"].isoformat(),
            "policy_version": row["policy_version"], "policy_sources": row["policy_sources"],
            "overridden": row["overridden"], "reason": row["reason"],
            "transfer_department": row["transfer_department"], "staged_payments": row["staged_payments"],
            "pay_first": row["pay_first"], "decided_at": row["decided_at"].isoformat(),
            "decided_by": {"sub": row["decided_by_sub"], "name": row["decided_by_name"], "role": row["decided_by_role"]},
            "assessment": mask_assessment(row["assessment"], role),
            "inputs": mask_ids(row["inputs"], role),
        }

    async def replay(self, decision_id: str, principal: Principal) -> dict[str, Any]:
        """Recompute the decision as of its day from its stored inputs and the policy versions
        that were published when it was made (publication sequence ≤ the stored one)."""
        row, case = await self._load(decision_id, principal)
        inputs: dict[str, Any] = row["inputs"]
        household = None
        if "household_ref" in inputs:
            async with self.runtime.session_factory() as s:
                ref = await s.scalar(sa.select(decisions.c.inputs).where(decisions.c.id == inputs["household_ref"]))
            household = (ref or {}).get("household")
            if household is None:
                raise Conflict(f"decision {decision_id}: the household it refers to ({inputs['household_ref']}) is missing")
        snap = await self.policies.snapshot()
        as_of = row["as_of"]
        res, policy = self.policies.resolve_in(snap, inputs["region_code"], as_of, max_seq=row["policy_seq"])
        stored = row["assessment"]
        replayed: dict[str, Any] | None = None
        problem = None
        if policy is None:
            problem = f"no complete policy for {inputs['region_code']} on {as_of}: missing {', '.join(res.missing)}"
        else:
            try:
                replayed = assess(request_from_json(inputs, household), policy).to_dict()
            except InvalidRequest as exc:
                problem = "; ".join(f"{f}: {m}" for f, m in exc.errors)
        differences = []
        if replayed is not None:
            differences = [k for k in stored if stored.get(k) != replayed.get(k)]
            if policy is not None and policy.version_id != row["policy_version"]:
                differences.append("policy_version_used")
        now_res, now_policy = self.policies.resolve_in(snap, inputs["region_code"], as_of)
        later = sorted({v for v in now_res.sources.values()} - {v for v in res.sources.values()})
        role = principal.role
        async with self.runtime.session_factory() as s:  # compared on keys above, shown with numbers
            stored, replayed = await self.persons.plain(s, stored, replayed)
        return {
            "decision_id": row["id"], "kind": row["kind"], "case_id": row["case_id"], "as_of": as_of.isoformat(),
            "policy_seq": row["policy_seq"],
            "stored": {"policy_version": row["policy_version"], "policy_sources": row["policy_sources"],
                       "assessment": mask_assessment(stored, role)},
            "replayed": None if replayed is None else {
                "policy_version": policy.version_id if policy else None, "policy_sources": dict(res.sources),
                "assessment": mask_assessment(replayed, role)},
            "equal": replayed is not None and not differences,
            "differences": differences,
            "problem": problem,
            "final": {"outcome": row["outcome"], "monthly_amount": _yuan(row["monthly_fen"]),
                      "one_time_amount": _yuan(row["one_time_fen"]), "overridden": row["overridden"],
                      "reason": row["reason"]},
            "versions_published_later_for_that_day": later,
        }
