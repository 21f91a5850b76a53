"""POST /v1/assessments — the public what-if calculator (API.md, FIXED). Stores nothing.

Checks beyond the body's types (each reported with its field path, all at once): the birth
date encoded in the identity number, birth dates after ``as_of`` or in the future, a person
listed twice, ``hardship`` only and always for 临时救助 (with ``expense_amount`` for 支出型),
and a region with a 低保 standard in force on ``as_of``. The engine's own ``InvalidRequest``
maps to the same 422. The 200 body is ``Assessment.to_dict()`` unchanged in shape; identity
numbers in it are masked unless the caller is staff allowed to see them (shared/privacy.py).
A stale standard (not adjusted for more than ``STALE_STANDARD_MONTHS``) is not hidden: the
answer carries a D1 reason saying so and the ``Policy-Stale: true`` header.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from shared.auth import Principal, is_region_code
from shared.errors import InvalidInput
from shared.privacy import present_id

from services.eligibility.domain.rules import (
    AssessmentRequest, Hardship, Household, InvalidRequest, Member, assess,
)
from services.eligibility.policies import PolicyService, today
from services.eligibility.schemas import AssessmentIn

STALE_SOURCE = "001_3569ff067e28e058.txt 二(三)5"


def _problem(errors: list[dict[str, str]]) -> InvalidInput:
    return InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)


def check(body: AssessmentIn, *, now: date | None = None) -> list[dict[str, str]]:
    """Cross-field checks that the types alone cannot express."""
    now = now or today()
    errors: list[dict[str, str]] = []
    if not is_region_code(body.region_code):
        errors.append({"field": "region_code", "message": "must be a 12-digit administrative region code"})
    seen: set[str] = set()
    for i, m in enumerate(body.household.members):
        path = f"household.members.{i}"
        encoded = date(int(m.person_id[6:10]), int(m.person_id[10:12]), int(m.person_id[12:14]))
        if m.birth_date != encoded:
            errors.append({"field": f"{path}.birth_date", "message": "does not match the birth date in the identity number"})
        if m.birth_date > now:
            errors.append({"field": f"{path}.birth_date", "message": "is in the future"})
        elif m.birth_date > body.as_of:
            errors.append({"field": f"{path}.birth_date", "message": "is after as_of"})
        if m.person_id in seen:
            errors.append({"field": f"{path}.person_id", "message": "the same person is listed twice"})
        seen.add(m.person_id)
        if m.disability_kind is not None and m.disability_grade is None:
            errors.append({"field": f"{path}.disability_kind", "message": "needs disability_grade"})
    if body.program == "linshi":
        if body.hardship is None:
            errors.append({"field": "hardship", "message": "required for linshi (kind and months, L2, L3)"})
        elif body.hardship.kind == "expense" and body.hardship.expense_amount is None:
            errors.append({"field": "hardship.expense_amount", "message": "required for an expense hardship (L2)"})
    elif body.hardship is not None:
        errors.append({"field": "hardship", "message": "applies to linshi only"})
    if body.current_benefit is not None and body.program != "dibao":
        errors.append({"field": "current_benefit", "message": "applies to dibao only (D5)"})
    return errors


def to_request(body: AssessmentIn) -> AssessmentRequest:
    hh = body.household
    members = tuple(Member(m.person_id, m.birth_date, m.monthly_income, m.disability_grade, m.disability_kind,
                           m.serious_illness, m.in_school, m.labor_capacity, m.self_care) for m in hh.members)
    household = Household(members, hh.rigid_expenses_monthly, hh.employment_costs_monthly, hh.single_parent,
                          hh.only_child, hh.pure_daughter, hh.land_lost, hh.assets_within_limits,
                          hh.has_able_legal_supporter)
    hardship = None
    if body.hardship is not None:
        hardship = Hardship(body.hardship.kind, body.hardship.months, body.hardship.expense_amount)
    return AssessmentRequest(body.program, body.area, body.as_of, household,
                             body.current_benefit.monthly_amount if body.current_benefit else None, hardship)


def mask_assessment(d: dict[str, Any], role: str | None) -> dict[str, Any]:
    """Identity numbers inside an Assessment dict, masked for everyone without the right to see them."""
    def show(pid: Any) -> Any:
        return present_id(pid, role or "") if isinstance(pid, str) else pid
    out = dict(d)
    out["covered_members"] = [show(p) for p in d.get("covered_members", [])]
    out["breakdown"] = [{**b, "person_id": show(b.get("person_id"))} for b in d.get("breakdown", [])]
    return out


def no_standard_error(region_code: str, on: date, missing: list[str]) -> InvalidInput:
    return InvalidInput.field(
        "region_code",
        f"no complete policy is in force for {region_code} on {on.isoformat()}: missing {', '.join(missing)} "
        "(the county publishes its 低保 standards with POST /v1/policies; POLICY.md §1)")


def stale_reason(adjusted: date | None, months: int) -> dict[str, str]:
    return {"code": "D1", "source": STALE_SOURCE,
            "text": f"注意：本地低保标准自 {adjusted.isoformat() if adjusted else '—'} 起已超过 {months} 个月未调整"
                    f"（动态调整机制），本结果按现行标准计算，待县级民政部门公布新标准（D1）"}


class AssessmentService:
    def __init__(self, policies: PolicyService) -> None:
        self.policies = policies

    async def assess(self, body: AssessmentIn, principal: Principal | None) -> tuple[dict[str, Any], bool]:
        """The API.md 200 body and whether the standard used is stale."""
        errors = check(body)
        if errors:
            raise _problem(errors)
        res, policy, _ = await self.policies.resolved(body.region_code, body.as_of)
        if policy is None:
            raise no_standard_error(body.region_code, body.as_of, res.missing)
        try:
            result = assess(to_request(body), policy)
        except InvalidRequest as exc:
            raise _problem([{"field": f, "message": m} for f, m in exc.errors]) from None
        out = mask_assessment(result.to_dict(), principal.role if principal else None)
        stale = self.policies.stale(policy, body.as_of)
        if stale:
            out["reasons"] = out["reasons"] + [stale_reason(policy.standard_adjusted_on,
                                                            self.policies.settings.stale_standard_months)]
        return out, stale
