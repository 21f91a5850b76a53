"""Engine inputs as stored JSON ⇄ the engine's dataclasses (pure, stdlib only).

A *stored household* is the compact JSON form eligibility keeps for decisions and benefits
(``benefits.household``, ``decisions.inputs.household``). It holds exactly what the engine
reads, and leaves out values equal to the engine's defaults, so a million of them stay small
and decode fast (the re-evaluation hot path, PERFORMANCE.md):

    {"members": [{"person_id": "5227011950…", "birth_date": "1950-03-01",
                  "monthly_income": "100.00",          # always present
                  "disability_grade": 2, "disability_kind": "physical",   # only when set
                  "serious_illness": true, "in_school": true,              # only when true
                  "labor_capacity": "none", "self_care": "partial"}],      # only when not "full"
     "assets_within_limits": true,                       # always present (the means test decided it)
     "rigid_expenses_monthly": "120.00", "employment_costs_monthly": "0.00",  # only when not 0
     "single_parent": true, "only_child": true, "pure_daughter": true,        # only when true
     "land_lost": true, "has_able_legal_supporter": true}

A *stored request* (``decisions.inputs``) adds the program, area, as-of date, the policy
region, the current benefit and the hardship; a re-evaluation row may instead point to the
decision holding the household (``household_ref``) so a policy re-evaluation of a million
cases does not copy a million unchanged households.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Mapping

from .rules import AssessmentRequest, Hardship, Household, Member

__all__ = ["compact_member", "compact_household", "household_from_json", "request_json", "FastMember",
           "FastHousehold", "FastRequest", "fast_household",
           "request_from_json", "money_str"]

_ZERO = Decimal("0.00")
_MEMBER_FLAGS = ("serious_illness", "in_school")
_HH_FLAGS = ("single_parent", "only_child", "pure_daughter", "land_lost", "has_able_legal_supporter")


def money_str(v: Any) -> str:
    """A decimal amount as its exact JSON string (no float ever)."""
    if isinstance(v, float):
        raise TypeError("money must not be a float")
    d = v if isinstance(v, Decimal) else Decimal(str(v))
    return str(d)


def compact_member(m: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of one member (from an API body, an event's member or a stored one)."""
    income = m.get("monthly_income")
    out: dict[str, Any] = {"person_id": m["person_id"], "birth_date": str(m["birth_date"]),
                           "monthly_income": money_str(income if income not in (None, "") else _ZERO)}
    if m.get("disability_grade") is not None:
        out["disability_grade"] = int(m["disability_grade"])
    if m.get("disability_kind") is not None:
        out["disability_kind"] = m["disability_kind"]
    for flag in _MEMBER_FLAGS:
        if m.get(flag):
            out[flag] = True
    for key in ("labor_capacity", "self_care"):
        v = m.get(key)
        if v is not None and v != "full":
            out[key] = v
    return out


def compact_household(hh: Mapping[str, Any], *, assets_within_limits: bool,
                      incomes: Mapping[str, Decimal] | None = None) -> dict[str, Any]:
    """The stored form of a household; ``incomes`` replaces members' monthly incomes (the means
    test's verified figures) and ``assets_within_limits`` is the means test's finding."""
    members = []
    for m in hh["members"]:
        cm = compact_member(m)
        if incomes is not None and m["person_id"] in incomes:
            cm["monthly_income"] = money_str(incomes[m["person_id"]])
        members.append(cm)
    out: dict[str, Any] = {"members": members, "assets_within_limits": bool(assets_within_limits)}
    for key in ("rigid_expenses_monthly", "employment_costs_monthly"):
        v = hh.get(key)
        if v not in (None, "") and Decimal(str(v)) != 0:
            out[key] = money_str(v)
    for flag in _HH_FLAGS:
        if hh.get(flag):
            out[flag] = True
    return out


def household_from_json(d: Mapping[str, Any]) -> Household:
    """The engine's :class:`Household` from the stored form (hot path: no validation beyond
    what the constructors need; stored households were validated when they were written)."""
    members = []
    append = members.append
    for m in d["members"]:
        g = m.get
        append(Member(m["person_id"], date.fromisoformat(m["birth_date"]), Decimal(m["monthly_income"]),
                      g("disability_grade"), g("disability_kind"), g("serious_illness", False),
                      g("in_school", False), g("labor_capacity", "full"), g("self_care", "full")))
    g = d.get
    rigid = g("rigid_expenses_monthly")
    emp = g("employment_costs_monthly")
    assets = d["assets_within_limits"]
    if not isinstance(assets, bool):
        raise ValueError("stored household lacks assets_within_limits")
    return Household(tuple(members), Decimal(rigid) if rigid else _ZERO, Decimal(emp) if emp else _ZERO,
                     g("single_parent", False), g("only_child", False), g("pure_daughter", False),
                     g("land_lost", False), assets, g("has_able_legal_supporter", False))


def request_json(*, program: str, area: str, as_of: date, region_code: str, household: Mapping[str, Any] | None,
                 current_benefit: Decimal | None = None, hardship: Mapping[str, Any] | None = None,
                 household_ref: str | None = None) -> dict[str, Any]:
    """The stored engine request (``decisions.inputs``)."""
    out: dict[str, Any] = {"program": program, "area": area, "as_of": as_of.isoformat(), "region_code": region_code,
                           "current_benefit": None if current_benefit is None else money_str(current_benefit),
                           "hardship": None}
    if household_ref is not None:
        out["household_ref"] = household_ref
    else:
        out["household"] = dict(household or {})
    if hardship:
        h = {"kind": hardship["kind"], "months": int(hardship.get("months") or 1)}
        if hardship.get("expense_amount") not in (None, ""):
            h["expense_amount"] = money_str(hardship["expense_amount"])
        out["hardship"] = h
    return out


def request_from_json(d: Mapping[str, Any], household: Mapping[str, Any] | None = None) -> AssessmentRequest:
    """Rebuild the engine request from its stored form (``household`` resolves a ``household_ref``)."""
    hh = household if household is not None else d["household"]
    h = d.get("hardship")
    hardship = None
    if h:
        exp = h.get("expense_amount")
        hardship = Hardship(h["kind"], int(h["months"]), Decimal(exp) if exp is not None else None)
    cur = d.get("current_benefit")
    return AssessmentRequest(program=d["program"], area=d["area"], as_of=date.fromisoformat(d["as_of"]),
                             household=household_from_json(hh),
                             current_benefit_monthly=Decimal(cur) if cur is not None else None,
                             hardship=hardship)


# ----------------------------------------------------------------------------- the hot path
# Re-evaluating a million stored households spends most of its time building inputs. The
# engine reads its inputs by attribute only, so the hot path hands it plain slot objects with
# the same attributes as Member / Household / AssessmentRequest (frozen dataclasses cost ~4×
# more to construct). tests/eligibility/test_domain.py checks that both give identical results.

class FastMember:
    __slots__ = ("person_id", "birth_date", "monthly_income", "disability_grade", "disability_kind",
                 "serious_illness", "in_school", "labor_capacity", "self_care")

    def __init__(self, person_id: str, birth_date: date, monthly_income: Decimal, disability_grade: Any,
                 disability_kind: Any, serious_illness: bool, in_school: bool, labor_capacity: str,
                 self_care: str) -> None:
        self.person_id = person_id
        self.birth_date = birth_date
        self.monthly_income = monthly_income
        self.disability_grade = disability_grade
        self.disability_kind = disability_kind
        self.serious_illness = serious_illness
        self.in_school = in_school
        self.labor_capacity = labor_capacity
        self.self_care = self_care


class FastHousehold:
    __slots__ = ("members", "rigid_expenses_monthly", "employment_costs_monthly", "single_parent", "only_child",
                 "pure_daughter", "land_lost", "assets_within_limits", "has_able_legal_supporter")

    def __init__(self, members: tuple[Any, ...], rigid: Decimal, employment: Decimal, single_parent: bool,
                 only_child: bool, pure_daughter: bool, land_lost: bool, assets: bool, supporter: bool) -> None:
        self.members = members
        self.rigid_expenses_monthly = rigid
        self.employment_costs_monthly = employment
        self.single_parent = single_parent
        self.only_child = only_child
        self.pure_daughter = pure_daughter
        self.land_lost = land_lost
        self.assets_within_limits = assets
        self.has_able_legal_supporter = supporter


class FastRequest:
    __slots__ = ("program", "area", "as_of", "household", "current_benefit_monthly", "hardship")

    def __init__(self, program: str, area: str, as_of: date, household: Any, current: Decimal | None) -> None:
        self.program = program
        self.area = area
        self.as_of = as_of
        self.household = household
        self.current_benefit_monthly = current
        self.hardship = None


def fast_household(d: Mapping[str, Any]) -> FastHousehold:
    """Like :func:`household_from_json`, for the re-evaluation hot path (same attributes)."""
    fd = date.fromisoformat
    members = []
    append = members.append
    for m in d["members"]:
        if len(m) == 3:   # the common shape: id, birth date, income only
            append(FastMember(m["person_id"], fd(m["birth_date"]), Decimal(m["monthly_income"]), None, None,
                              False, False, "full", "full"))
            continue
        g = m.get
        append(FastMember(m["person_id"], fd(m["birth_date"]), Decimal(m["monthly_income"]),
                          g("disability_grade"), g("disability_kind"), g("serious_illness", False),
                          g("in_school", False), g("labor_capacity", "full"), g("self_care", "full")))
    if len(d) == 2:       # members + assets_within_limits only
        assets = d["assets_within_limits"]
        if not isinstance(assets, bool):
            raise ValueError("stored household lacks assets_within_limits")
        return FastHousehold(tuple(members), _ZERO, _ZERO, False, False, False, False, assets, False)
    g = d.get
    rigid = g("rigid_expenses_monthly")
    emp = g("employment_costs_monthly")
    assets = d["assets_within_limits"]
    if not isinstance(assets, bool):
        raise ValueError("stored household lacks assets_within_limits")
    return FastHousehold(tuple(members), Decimal(rigid) if rigid else _ZERO, Decimal(emp) if emp else _ZERO,
                         g("single_parent", False), g("only_child", False), g("pure_daughter", False),
                         g("land_lost", False), assets, g("has_able_legal_supporter", False))
