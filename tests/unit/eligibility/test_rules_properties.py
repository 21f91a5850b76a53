"""Properties of the engine over random households (hypothesis), per rule code.

- D2/D3/D4/D5/T2/L3: amounts are never negative, and always whole fen.
- Rounding (API.md): monthly_amount (one_time_amount for linshi) equals the sum of the rounded
  breakdown lines; denied ⇒ no lines, no covered members.
- D1/D2: more income never raises the dibao amount — for households with no current benefit
  and no D4 candidate (with them the API.md semantics have a deliberate notch, see
  test_rules_dibao.py::test_D4_known_notch_more_income_can_raise_the_amount).
- D2/D3/T2/L3: a larger household with the same per-capita income (one member cloned) never
  gets less in total.
"""
from __future__ import annotations

import dataclasses
import json
import re
from datetime import date, timedelta
from decimal import Decimal as D
from pathlib import Path

from hypothesis import given, settings, strategies as st

from services.eligibility.domain.policy import PolicyParams, ResolvedPolicy, validate_params
from services.eligibility.domain.rules import (
    AssessmentRequest, Hardship, Household, Member, assess,
)

DATA = Path(__file__).resolve().parents[3] / "services" / "eligibility" / "data"
AS_OF = date(2026, 11, 1)


def make_policy(version: str = "test-v1", **overrides: object) -> ResolvedPolicy:
    values: dict = {}
    for name in ("default_policy.json", "example_standards.json"):
        doc = json.loads((DATA / name).read_text(encoding="utf-8"))
        v, errors = validate_params(doc["params"])
        assert not errors
        values.update(v)
    values.update(overrides)
    return ResolvedPolicy(PolicyParams.from_values(values), version)


POLICY = make_policy()
CENTS = D("0.01")
SOURCE_RE = re.compile(r"\d{3}_[0-9a-f]{16}\.txt [一二三四五六七八九十]+\([一二三四五六七八九十]+\)\d*")

money = st.integers(min_value=0, max_value=300_000).map(lambda c: D(c) / 100)
small_money = st.integers(min_value=0, max_value=60_000).map(lambda c: D(c) / 100)
birth = st.integers(min_value=0, max_value=(AS_OF - date(1920, 1, 1)).days).map(
    lambda d: date(1920, 1, 1) + timedelta(days=d))
grade = st.one_of(st.none(), st.integers(min_value=1, max_value=4))
kind = st.sampled_from(["physical", "visual", "hearing", "speech", "intellectual", "mental", "multiple"])
level3 = st.sampled_from(["full", "partial", "none"])

members = st.builds(
    Member,
    person_id=st.uuids().map(str),
    birth_date=birth,
    monthly_income=money,
    disability_grade=grade,
    disability_kind=st.one_of(st.none(), kind),
    serious_illness=st.booleans(),
    in_school=st.booleans(),
    labor_capacity=level3,
    self_care=level3,
)


@st.composite
def households(draw, min_size=1, max_size=6, severe=True):
    ms = draw(st.lists(members, min_size=min_size, max_size=max_size))
    if not severe:
        ms = [dataclasses.replace(m, serious_illness=False,
                                  disability_grade=None if m.disability_grade in (1, 2)
                                  else m.disability_grade) for m in ms]
    return Household(
        members=tuple(ms),
        rigid_expenses_monthly=draw(small_money),
        employment_costs_monthly=draw(small_money),
        single_parent=draw(st.booleans()), only_child=draw(st.booleans()),
        pure_daughter=draw(st.booleans()), land_lost=draw(st.booleans()),
        assets_within_limits=draw(st.booleans()),
        has_able_legal_supporter=draw(st.booleans()),
    )


@st.composite
def requests(draw):
    program = draw(st.sampled_from(["dibao", "tekun", "linshi"]))
    hardship = None
    if program == "linshi":
        k = draw(st.sampled_from(["emergency", "expense"]))
        hardship = Hardship(k, draw(st.integers(min_value=1, max_value=12)),
                            draw(money) if k == "expense" else None)
    return AssessmentRequest(
        program=program, area=draw(st.sampled_from(["urban", "rural"])), as_of=AS_OF,
        household=draw(households()),
        current_benefit_monthly=draw(st.one_of(st.none(), money)) if program == "dibao" else None,
        hardship=hardship)


standards = st.tuples(st.integers(min_value=30_000, max_value=150_000),
                      st.integers(min_value=20_000, max_value=150_000))
policies = standards.map(lambda s: make_policy(dibao_standard_urban=D(s[0]) / 100,
                                               dibao_standard_rural=D(s[1]) / 100))


def amount(res) -> D:
    return res.one_time_amount if res.monthly_amount is None else res.monthly_amount


@settings(max_examples=400, deadline=None)
@given(requests(), policies)
def test_D2_D3_D4_D5_T2_L3_amounts_never_negative_and_whole_fen(req, policy):
    res = assess(req, policy)
    total = amount(res)
    assert total >= 0 and total == total.quantize(CENTS)
    for line in res.breakdown:
        assert line.amount >= 0 and line.amount.as_tuple().exponent == -2
        assert line.code in {"D2", "D3", "D4", "D5", "T2", "L3"}
    for r in res.reasons:
        assert r.code[0] in "DTL" and r.code[1:].isdigit() and f"（{r.code}" in r.text
        assert SOURCE_RE.fullmatch(r.source), r.source


@settings(max_examples=400, deadline=None)
@given(requests(), policies)
def test_D2_D3_D4_D5_T2_L3_rounding_total_is_sum_of_rounded_lines_and_output_convention(req, policy):
    res = assess(req, policy)
    out = res.to_dict()
    assert res.eligible is (res.outcome != "denied")
    if req.program == "linshi":
        assert res.monthly_amount is None and res.one_time_amount is not None
    else:
        assert res.one_time_amount is None and res.monthly_amount is not None
    if res.eligible:
        assert amount(res) == sum(b.amount for b in res.breakdown)
        assert D(out["monthly_amount"] or out["one_time_amount"]) == sum(
            D(b["amount"]) for b in out["breakdown"])
    else:
        assert res.breakdown == [] and res.covered_members == [] and amount(res) == 0
    assert res.approval_level in ("township", "county")
    assert (res.exit_months is not None) is (res.outcome == "gradual_exit")


@settings(max_examples=400, deadline=None)
@given(households(severe=False), st.integers(min_value=0, max_value=5),
       st.integers(min_value=1, max_value=200_000), st.sampled_from(["urban", "rural"]), policies)
def test_D1_D2_more_income_never_raises_the_dibao_amount(hh, idx, extra_cents, area, policy):
    m = hh.members[idx % len(hh.members)]
    richer = dataclasses.replace(m, monthly_income=m.monthly_income + D(extra_cents) / 100)
    hh2 = dataclasses.replace(hh, members=tuple(richer if x is m else x for x in hh.members))
    before = assess(AssessmentRequest("dibao", area, AS_OF, hh), policy)
    after = assess(AssessmentRequest("dibao", area, AS_OF, hh2), policy)
    assert after.monthly_amount <= before.monthly_amount


@settings(max_examples=400, deadline=None)
@given(st.lists(members, min_size=1, max_size=5), st.integers(min_value=0, max_value=4),
       small_money, st.booleans(), st.booleans(), st.booleans(),
       st.sampled_from(["urban", "rural"]), st.sampled_from(["dibao", "tekun", "linshi"]),
       st.one_of(st.none(), money), policies)
def test_D2_D3_T2_L3_larger_household_same_pci_never_gets_less(
        ms, idx, rigid_pc, single_parent, only_child, supporter, area, program, current, policy):
    pci = ms[0].monthly_income                     # every member earns the same
    same = [dataclasses.replace(m, monthly_income=pci) for m in ms]
    clone = dataclasses.replace(same[idx % len(same)], person_id="clone")

    def run(group):
        hh = Household(tuple(group), rigid_expenses_monthly=rigid_pc * len(group),
                       single_parent=single_parent, only_child=only_child,
                       has_able_legal_supporter=supporter)
        hardship = Hardship("emergency", 3) if program == "linshi" else None
        return assess(AssessmentRequest(program, area, AS_OF, hh,
                                        current_benefit_monthly=current if program == "dibao" else None,
                                        hardship=hardship), policy)

    small, large = run(same), run(same + [clone])
    assert amount(large) >= amount(small)
    assert large.outcome == small.outcome or small.outcome == "denied"
