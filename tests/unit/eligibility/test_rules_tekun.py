"""特困 (tekun) rules T1–T2 (+ D6 approval), table-driven from the seeds and API.md.

T1: (age ≥ elderly_age, or age < tekun_minor_age, or grade 1–2, or grade 3 intellectual/mental)
and no labor capacity (minors count as none) and own income < S and no able legal supporter.
T2: tekun_multiplier·U + care fee by self_care. Policy: national defaults + EXAMPLE standards
(U = 800.00, rural S = 600.00); as_of 2026-11-01.
"""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from services.eligibility.domain.policy import PolicyParams, ResolvedPolicy, validate_params
from services.eligibility.domain.rules import (
    AssessmentRequest, Household, InvalidRequest, Member, assess,
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


def person(pid: str = "A", born: date = date(1950, 3, 1), income: str = "0.00",
           labor: str = "none", care: str = "full", **kw) -> Member:
    return Member(pid, born, D(income), labor_capacity=labor, self_care=care, **kw)


def tekun(*members: Member, area: str = "urban", policy: ResolvedPolicy = POLICY, **hh):
    return assess(AssessmentRequest("tekun", area, AS_OF, Household(members, **hh)), policy)


T1_CASES = [
    # id, member kwargs, qualifies
    pytest.param({}, True, id="T1-elderly-76-no-labor"),
    pytest.param({"born": date(1966, 11, 1)}, True, id="T1-elderly-exactly-60-on-as_of"),
    pytest.param({"born": date(1966, 11, 2)}, False, id="T1-age-59-not-elderly"),
    pytest.param({"born": date(1950, 3, 1), "labor": "partial"}, False, id="T1-elderly-partial-labor"),
    pytest.param({"born": date(1950, 3, 1), "labor": "full"}, False, id="T1-elderly-full-labor"),
    pytest.param({"born": date(2008, 11, 2), "labor": "full"}, True,
                 id="T1-minor-17-day-before-18th-birthday-counts-as-no-labor"),
    pytest.param({"born": date(2008, 11, 1), "labor": "full"}, False,
                 id="T1-18th-birthday-on-as_of-no-longer-minor"),
    pytest.param({"born": date(2008, 11, 1), "labor": "none"}, False,
                 id="T1-18th-birthday-on-as_of-adult-without-category"),
    pytest.param({"born": date(2010, 1, 1), "labor": "full"}, True, id="T1-minor-16-extended-from-16-to-18"),
    pytest.param({"born": date(1990, 1, 1), "disability_grade": 1, "disability_kind": "physical"}, True,
                 id="T1-grade1-physical"),
    pytest.param({"born": date(1990, 1, 1), "disability_grade": 2, "disability_kind": "visual"}, True,
                 id="T1-grade2-visual"),
    pytest.param({"born": date(1990, 1, 1), "disability_grade": 3, "disability_kind": "intellectual"}, True,
                 id="T1-grade3-intellectual-qualifies"),
    pytest.param({"born": date(1990, 1, 1), "disability_grade": 3, "disability_kind": "mental"}, True,
                 id="T1-grade3-mental-qualifies"),
    pytest.param({"born": date(1990, 1, 1), "disability_grade": 3, "disability_kind": "physical"}, False,
                 id="T1-grade3-physical-does-not"),
    pytest.param({"born": date(1990, 1, 1), "disability_grade": 3, "disability_kind": "multiple"}, False,
                 id="T1-grade3-multiple-does-not"),
    pytest.param({"born": date(1990, 1, 1), "disability_grade": 4, "disability_kind": "intellectual"}, False,
                 id="T1-grade4-intellectual-does-not"),
    pytest.param({"born": date(1990, 1, 1), "serious_illness": True}, False,
                 id="T1-serious-illness-alone-is-not-a-category"),
    pytest.param({"income": "799.99"}, True, id="T1-own-income-just-below-S"),
    pytest.param({"income": "800.00"}, False, id="T1-own-income-exactly-S"),
]


@pytest.mark.parametrize("member_kw, qualifies", T1_CASES)
def test_T1_who_qualifies(member_kw, qualifies):
    res = tekun(person("A", **member_kw))
    assert res.eligible is qualifies
    assert res.outcome == ("approved" if qualifies else "denied")
    assert res.covered_members == (["A"] if qualifies else [])
    t1 = [r for r in res.reasons if r.code == "T1"]
    assert len(t1) == 1 and ("不符合特困人员条件" not in t1[0].text) is qualifies
    if qualifies:
        assert str(res.monthly_amount) == "1040.00"
    else:
        assert (str(res.monthly_amount), res.breakdown) == ("0.00", [])


def test_T1_able_legal_supporter_excludes_everyone():
    res = tekun(person("A"), person("B", born=date(2012, 1, 1)), has_able_legal_supporter=True)
    assert res.outcome == "denied"
    t1 = [r for r in res.reasons if r.code == "T1"]
    assert len(t1) == 1 and "义务人" in t1[0].text and "全体成员" in t1[0].text
    assert (res.covered_members, str(res.monthly_amount)) == ([], "0.00")


def test_T1_income_test_uses_area_standard_rural():
    assert tekun(person("A", income="650.00"), area="rural").outcome == "denied"   # 650 ≥ 600
    assert tekun(person("A", income="650.00"), area="urban").outcome == "approved"  # 650 < 800
    assert tekun(person("A", income="599.99"), area="rural").outcome == "approved"


def test_T1_minor_reason_cites_the_16_to_18_extension():
    res = tekun(person("A", born=date(2012, 6, 1), labor="full"))
    t1 = res.reasons[0]
    assert "未成年人（14 周岁，未满 18 周岁）" in t1.text
    assert t1.source == "000_e289ce00f249d99f.txt 二(一)"


def test_T1_minor_age_is_a_parameter():
    pol = make_policy(tekun_minor_age=16)
    assert tekun(person("A", born=date(2009, 11, 1), labor="full"), policy=pol).outcome == "denied"
    assert tekun(person("A", born=date(2009, 11, 1), labor="full")).outcome == "approved"


T2_CASES = [
    pytest.param("full", "1040.00", id="T2-full-self-care-fee-0"),
    pytest.param("partial", "1240.00", id="T2-partial-self-care-fee-200"),
    pytest.param("none", "1540.00", id="T2-no-self-care-fee-500"),
]


@pytest.mark.parametrize("care, amount", T2_CASES)
def test_T2_amount_is_multiplier_times_urban_standard_plus_care_fee(care, amount):
    res = tekun(person("A", care=care))
    assert [(b.code, b.person_id, str(b.amount)) for b in res.breakdown] == [("T2", "A", amount)]
    assert str(res.monthly_amount) == amount


def test_T2_rural_amount_still_uses_urban_standard():
    res = tekun(person("A", care="partial"), area="rural")
    assert str(res.monthly_amount) == "1240.00"     # 1.3 × 800 + 200, not 1.3 × 600
    assert "1.3 × 城市低保标准 800.00 = 1040.00 元" in res.breakdown[0].text


def test_T2_summed_over_qualifying_members_only():
    res = tekun(person("A", care="none"), person("B", born=date(1980, 1, 1), labor="full"),
                person("C", born=date(2015, 5, 5), care="partial"))
    assert res.covered_members == ["A", "C"]
    assert [str(b.amount) for b in res.breakdown] == ["1540.00", "1240.00"]
    assert str(res.monthly_amount) == "2780.00"
    assert [r.code for r in res.reasons] == ["T1", "T1", "T1", "D6"]


def test_T2_rounding_half_up():
    pol = make_policy(dibao_standard_urban=D("733.35"))     # 1.3 × 733.35 = 953.355
    res = tekun(person("A"), policy=pol)
    assert str(res.monthly_amount) == "953.36"


def test_T2_D6_approval_level_follows_delegation():
    assert tekun(person("A")).approval_level == "township"
    assert tekun(person("A"), policy=make_policy(
        approval_delegated_to_township=False)).approval_level == "county"
    # a denial is confirmed by the same authority
    assert tekun(person("A", labor="full")).approval_level == "township"


def test_T2_to_dict_money_strings_and_no_one_time_amount():
    out = tekun(person("A", care="partial")).to_dict()
    assert out["monthly_amount"] == "1240.00" and out["one_time_amount"] is None
    assert out["breakdown"][0]["amount"] == "1240.00"
    assert out["policy_version"] == "test-v1"


def test_T2_unknown_self_care_is_invalid():
    with pytest.raises(InvalidRequest):
        tekun(person("A", care="sometimes"))
