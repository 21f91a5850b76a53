"""低保 (dibao) rules D1–D6, table-driven from the seeds and API.md POST /v1/assessments.

Policy: the shipped national defaults (services/eligibility/data/default_policy.json) plus the
EXAMPLE county standards (urban 800.00, rural 600.00). as_of is 2026-11-01 throughout.
"""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from services.eligibility.domain.policy import PolicyParams, ResolvedPolicy, validate_params
from services.eligibility.domain.rules import (
    SOURCES, AssessmentRequest, Household, InvalidRequest, Member, assess,
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


def adult(pid: str = "A", income: str = "0.00", born: date = date(1986, 5, 5), **kw) -> Member:
    return Member(pid, born, D(income), **kw)


def dibao(*members: Member, area: str = "urban", current: str | None = None,
          policy: ResolvedPolicy = POLICY, **hh):
    req = AssessmentRequest("dibao", area, AS_OF, Household(members, **hh),
                            current_benefit_monthly=None if current is None else D(current))
    return assess(req, policy)


def lines(res) -> list[tuple[str, str | None, str]]:
    return [(b.code, b.person_id, str(b.amount)) for b in res.breakdown]


# --------------------------------------------------------------------------- D1 / D2

D1_D2_CASES = [
    # id, members, household kwargs, expected monthly amount
    pytest.param([adult("A", "300.00"), adult("B", "400.00")], {}, "900.00",
                 id="D1-D2-pci-350-two-adults"),
    pytest.param([adult("A", "1000.00"), adult("B", "800.00")],
                 {"rigid_expenses_monthly": D("300.00"), "employment_costs_monthly": D("100.00")},
                 "200.00", id="D1-rigid-and-employment-costs-deducted"),
    pytest.param([adult("A", "100.00")], {"rigid_expenses_monthly": D("500.00")}, "800.00",
                 id="D1-net-income-floored-at-zero"),
    pytest.param([adult("A", "799.99")], {}, "0.01", id="D1-one-fen-below-standard"),
]


@pytest.mark.parametrize("members, hh, expected", D1_D2_CASES)
def test_D1_D2_household_means_test_and_gap_amount(members, hh, expected):
    res = dibao(*members, **hh)
    assert (res.eligible, res.outcome) == (True, "approved")
    assert str(res.monthly_amount) == expected
    assert res.breakdown[0].code == "D2"
    assert res.covered_members == [m.person_id for m in members]
    assert res.one_time_amount is None and res.exit_months is None


def test_D1_reason_text_quotes_the_numbers_and_the_seed():
    res = dibao(adult("A", "300.00"), adult("B", "400.00"))
    d1 = res.reasons[0]
    assert d1.code == "D1" and d1.source == "000_e289ce00f249d99f.txt 二(一)"
    assert "家庭月人均收入 350.00 元" in d1.text
    assert d1.text == ("家庭月人均收入 350.00 元（月收入合计 700.00 元 ÷ 2 人），低于城市低保标准 "
                       "800.00 元，家庭财产未超出限额，符合低保条件（D1）")
    assert res.breakdown[0].text == "补差：城市低保标准 800.00 元 × 2 人 − 家庭月可计收入 700.00 元 = 900.00 元（D2）"


def test_D1_income_exactly_at_standard_is_not_approved():
    res = dibao(adult("A", "800.00"))
    assert (res.eligible, res.outcome) == (False, "denied")
    assert "不低于城市低保标准 800.00 元" in res.reasons[0].text


def test_D1_rural_standard_applies_in_rural_area():
    assert str(dibao(adult("A", "500.00"), area="rural").monthly_amount) == "100.00"
    assert dibao(adult("A", "600.00"), area="rural").outcome == "denied"


def test_D1_assets_outside_limits_deny_even_below_standard():
    res = dibao(adult("A", "0.00"), assets_within_limits=False)
    assert (res.eligible, res.outcome, str(res.monthly_amount)) == (False, "denied", "0.00")
    assert any(r.code == "D1" and "财产" in r.text and r.source == SOURCES["D1-assets"]
               for r in res.reasons)


def test_D1_assets_outside_limits_deny_gradual_exit_and_single_person_too():
    sev = adult("A", "0.00", disability_grade=1)
    rich = adult("B", "1700.00")
    assert dibao(sev, rich, current="300.00", assets_within_limits=False).outcome == "denied"
    assert dibao(sev, rich, assets_within_limits=False).outcome == "denied"


# --------------------------------------------------------------------------- D3

S = D("800.00")
D3_CASES = [
    # id, member kwargs, household kwargs, area, expected D3 amount (None = no tier line)
    pytest.param({"disability_grade": 1}, {}, "urban", "240.00", id="D3-tier1-grade1-severe-30pct"),
    pytest.param({"disability_grade": 2}, {}, "urban", "240.00", id="D3-tier1-grade2-severe-30pct"),
    pytest.param({"serious_illness": True}, {}, "urban", "240.00", id="D3-tier1-serious-illness-30pct"),
    pytest.param({"born": date(1966, 11, 1)}, {}, "urban", "160.00", id="D3-tier2-age-60-on-as_of-20pct"),
    pytest.param({"born": date(1966, 11, 2)}, {}, "urban", None, id="D3-tier2-age-59-day-before-birthday"),
    pytest.param({"in_school": True}, {}, "urban", "160.00", id="D3-tier2-student-20pct"),
    pytest.param({}, {"single_parent": True}, "urban", "120.00", id="D3-tier3-single-parent-urban-15pct"),
    pytest.param({}, {"only_child": True}, "urban", None, id="D3-tier3-only-child-not-in-urban"),
    pytest.param({}, {"only_child": True}, "rural", "90.00", id="D3-tier3-only-child-rural-15pct"),
    pytest.param({}, {"pure_daughter": True}, "rural", "90.00", id="D3-tier3-pure-daughter-rural"),
    pytest.param({}, {"land_lost": True}, "rural", "90.00", id="D3-tier3-land-lost-rural"),
    pytest.param({}, {"land_lost": True, "pure_daughter": True}, "urban", None,
                 id="D3-tier3-pure-daughter-land-lost-not-in-urban"),
    pytest.param({"disability_grade": 3}, {}, "urban", "70.00", id="D3-tier4-grade3-flat-70"),
    pytest.param({"disability_grade": 4}, {}, "urban", "70.00", id="D3-tier4-grade4-flat-70"),
    pytest.param({"disability_grade": 1, "born": date(1950, 1, 1)}, {}, "urban", "240.00",
                 id="D3-highest-tier-only-severe-elderly-gets-30pct-only"),
    pytest.param({"serious_illness": True, "in_school": True}, {"single_parent": True}, "urban",
                 "240.00", id="D3-highest-tier-only-three-tiers-apply"),
    pytest.param({"disability_grade": 3, "born": date(1950, 1, 1)}, {}, "urban", "160.00",
                 id="D3-highest-tier-only-elderly-beats-flat-70"),
    pytest.param({"disability_grade": 4}, {"only_child": True}, "rural", "90.00",
                 id="D3-highest-tier-only-rural-family-90-beats-flat-70"),
    pytest.param({}, {}, "urban", None, id="D3-no-tier"),
]


@pytest.mark.parametrize("member_kw, hh, area, expected", D3_CASES)
def test_D3_tiered_supplement_single_highest_tier(member_kw, hh, area, expected):
    res = dibao(adult("A", "0.00", **member_kw), area=area, **hh)
    assert res.outcome == "approved"
    d3 = [b for b in res.breakdown if b.code == "D3"]
    if expected is None:
        assert d3 == []
    else:
        assert [(b.person_id, str(b.amount)) for b in d3] == [("A", expected)]
        assert "仅取最高一档" in d3[0].text
    base = S if area == "urban" else D("600.00")
    assert res.monthly_amount == base + (D(expected) if expected else 0)


def test_D3_family_tier_applies_to_every_member():
    res = dibao(adult("A", "200.00"), adult("B", "0.00", in_school=True),
                adult("C", "0.00", born=date(2015, 1, 1)), single_parent=True)
    assert lines(res) == [("D2", None, "2200.00"), ("D3", "A", "120.00"),
                          ("D3", "B", "160.00"), ("D3", "C", "120.00")]
    assert str(res.monthly_amount) == "2600.00"


def test_D3_tier_texts_name_the_tier_and_the_arithmetic():
    res = dibao(adult("A", disability_grade=1, born=date(1950, 1, 1)), adult("B", disability_grade=3))
    texts = [b.text for b in res.breakdown if b.code == "D3"]
    assert texts == ["成员1 第一档·重度残疾（1级）：800.00 × 30% = 240.00 元（D3，仅取最高一档）",
                     "成员2 第四档·非重度残疾（3级）：定额 70.00 元（D3，仅取最高一档）"]


# --------------------------------------------------------------------------- D5 gradual exit

D5_CASES = [
    # id, monthly income of the one member, current benefit, expected outcome, amount
    pytest.param("800.00", "300.00", "gradual_exit", "300.00", id="D5-pci-exactly-at-standard-with-benefit"),
    pytest.param("800.00", None, "denied", "0.00", id="D5-pci-exactly-at-standard-without-benefit"),
    pytest.param("1199.99", "300.00", "gradual_exit", "300.00", id="D5-just-below-1.5x"),
    pytest.param("1200.00", "300.00", "denied", "0.00", id="D5-exactly-1.5x-stops"),
    pytest.param("1500.00", "300.00", "denied", "0.00", id="D5-above-1.5x-stops"),
    pytest.param("700.00", "300.00", "approved", "100.00", id="D5-below-standard-recomputed-approved"),
    pytest.param("900.00", "123.455", "gradual_exit", "123.46", id="D5-current-amount-rounded-half-up"),
]


@pytest.mark.parametrize("income, current, outcome, amount", D5_CASES)
def test_D5_gradual_exit_band(income, current, outcome, amount):
    res = dibao(adult("A", income), current=current)
    assert res.outcome == outcome
    assert str(res.monthly_amount) == amount
    assert res.eligible is (outcome != "denied")
    if outcome == "gradual_exit":
        assert res.exit_months == 6
        assert lines(res) == [("D5", None, amount)]
        assert res.covered_members == ["A"]
        assert any(r.code == "D5" and r.source == "003_dbf974436b87d268.txt 一(二)"
                   for r in res.reasons)
    else:
        assert res.exit_months is None


def test_D5_exit_months_is_a_parameter():
    pol = make_policy(gradual_exit_months=3, marginal_multiplier=D("2"))
    res = dibao(adult("A", "1500.00"), current="300.00", policy=pol)
    assert (res.outcome, res.exit_months) == ("gradual_exit", 3)


def test_D5_stop_reason_when_at_or_above_marginal():
    res = dibao(adult("A", "1200.00"), current="300.00")
    assert any(r.code == "D5" and "停发" in r.text and "1200.00" in r.text for r in res.reasons)


# --------------------------------------------------------------------------- D4 single person

def test_D4_single_person_severely_disabled_member_covered_alone():
    a = adult("A", "0.00", disability_grade=2)
    b = adult("B", "1700.00")
    res = dibao(a, b)                                  # pci 850: S ≤ pci < 1.5·S
    assert (res.eligible, res.outcome) == (True, "single_person")
    assert res.covered_members == ["A"]
    assert lines(res) == [("D4", "A", "800.00"), ("D3", "A", "240.00")]
    assert str(res.monthly_amount) == "1040.00"


def test_D4_single_person_own_income_above_standard_floored_at_zero():
    res = dibao(adult("A", "900.00", serious_illness=True), adult("B", "800.00"))
    assert res.outcome == "single_person"
    assert lines(res) == [("D4", "A", "0.00"), ("D3", "A", "240.00")]


def test_D4_single_person_each_qualifying_member_is_a_household_of_one():
    res = dibao(adult("A", "100.00", disability_grade=1), adult("B", "0.00", serious_illness=True),
                adult("C", "2600.00"))                 # pci 900
    assert res.covered_members == ["A", "B"]
    assert str(res.monthly_amount) == str(D("700.00") + D("240.00") + D("800.00") + D("240.00"))


def test_D4_single_person_needs_pci_below_marginal():
    res = dibao(adult("A", "0.00", disability_grade=1), adult("B", "2400.00"))  # pci = 1200 = 1.5·S
    assert res.outcome == "denied"
    assert any(r.code == "D4" for r in res.reasons)


def test_D4_grade_3_is_not_severe_for_single_person():
    res = dibao(adult("A", "0.00", disability_grade=3), adult("B", "1700.00"))
    assert res.outcome == "denied"
    assert any(r.code == "D4" and "无重度残疾" in r.text for r in res.reasons)


def test_D4_D5_precedence_gradual_exit_beats_single_person():
    res = dibao(adult("A", "0.00", disability_grade=1), adult("B", "1700.00"), current="500.00")
    assert (res.outcome, str(res.monthly_amount)) == ("gradual_exit", "500.00")


def test_D4_known_notch_more_income_can_raise_the_amount():
    """API.md semantics, documented: crossing S turns a small household gap into D4 cover."""
    a = adult("A", "0.00", disability_grade=1)
    before = dibao(a, adult("B", "1590.00"))           # pci 795 < 800: approved
    after = dibao(a, adult("B", "1600.00"))            # pci 800: single_person
    assert (before.outcome, str(before.monthly_amount)) == ("approved", "250.00")
    assert (after.outcome, str(after.monthly_amount)) == ("single_person", "1040.00")


# --------------------------------------------------------------------------- D6 + output

def test_D6_approval_level_follows_delegation_parameter():
    assert dibao(adult()).approval_level == "township"
    pol = make_policy(approval_delegated_to_township=False)
    res = dibao(adult(), policy=pol)
    assert res.approval_level == "county"
    assert any(r.code == "D6" and r.source == "001_3569ff067e28e058.txt 二(一)1" for r in res.reasons)


def test_D6_denied_output_convention():
    res = dibao(adult("A", "5000.00"))
    assert res.to_dict() == {
        "eligible": False, "outcome": "denied", "monthly_amount": "0.00",
        "one_time_amount": None, "covered_members": [], "approval_level": "township",
        "exit_months": None, "policy_version": "test-v1", "breakdown": [],
        "reasons": res.to_dict()["reasons"]}
    assert [r.code for r in res.reasons] == ["D1", "D4", "D6"]


def test_D2_to_dict_matches_api_response_shape():
    out = dibao(adult("A", "300.00", born=date(1950, 3, 1))).to_dict()
    assert list(out) == ["eligible", "outcome", "monthly_amount", "one_time_amount",
                         "covered_members", "approval_level", "exit_months", "policy_version",
                         "breakdown", "reasons"]
    assert out["monthly_amount"] == "660.00"
    assert out["breakdown"][0] == {"code": "D2", "person_id": None, "amount": "500.00",
                                   "text": out["breakdown"][0]["text"]}
    assert out["breakdown"][1]["amount"] == "160.00"
    assert all(set(r) == {"code", "text", "source"} for r in out["reasons"])
    json.dumps(out, ensure_ascii=False)


# --------------------------------------------------------------------------- rounding

ROUNDING_CASES = [
    # id, standard, members (income, member kwargs), hh kwargs, expected lines, total
    pytest.param("733.33", [("1000.00", {}), ("0.00", {}), ("0.00", {})], {"single_parent": True},
                 ["1199.99", "110.00", "110.00", "110.00"], "1529.99",
                 id="D2-D3-S-733.33-three-members-109.9995-rounds-to-110.00"),
    pytest.param("733.33", [("0.00", {"born": date(1950, 1, 1)}), ("0.00", {"disability_grade": 1}),
                            ("0.00", {})], {},
                 ["2199.99", "146.67", "220.00"], "2566.66",
                 id="D3-S-733.33-146.666-and-219.999-round-up"),
    pytest.param("733.35", [("0.00", {"serious_illness": True})], {},
                 ["733.35", "220.01"], "953.36",
                 id="D3-half-up-not-half-even-220.005-to-220.01"),
    pytest.param("733.33", [("1000.01", {}), ("0.00", {}), ("0.00", {})], {},
                 ["1199.98"], "1199.98", id="D2-exact-gap-pci-333.336"),
]


@pytest.mark.parametrize("standard, members, hh, expected_lines, total", ROUNDING_CASES)
def test_D2_D3_rounding_half_up_per_line_and_sum_of_rounded_lines(standard, members, hh,
                                                                  expected_lines, total):
    pol = make_policy(dibao_standard_urban=D(standard))
    ms = [adult(f"P{i}", inc, **kw) for i, (inc, kw) in enumerate(members)]
    res = dibao(*ms, policy=pol, **hh)
    assert [str(b.amount) for b in res.breakdown] == expected_lines
    assert str(res.monthly_amount) == total
    assert res.monthly_amount == sum(b.amount for b in res.breakdown)


def test_D1_pci_display_rounded_half_up():
    pol = make_policy(dibao_standard_urban=D("733.33"))
    res = dibao(adult("A", "1000.00"), adult("B", "0.00"), adult("C", "0.01"), policy=pol)
    assert "家庭月人均收入 333.34 元" in res.reasons[0].text   # 333.33666…


# --------------------------------------------------------------------------- invalid input

@pytest.mark.parametrize("req, field", [
    pytest.param(AssessmentRequest("dibao", "urban", AS_OF, Household(())), "household.members",
                 id="D1-no-members"),
    pytest.param(AssessmentRequest("dibao", "suburb", AS_OF, Household((adult(),))), "area",
                 id="D1-unknown-area"),
    pytest.param(AssessmentRequest("other", "urban", AS_OF, Household((adult(),))), "program",
                 id="D1-unknown-program"),
    pytest.param(AssessmentRequest("dibao", "urban", AS_OF,
                                   Household((adult(born=date(2027, 1, 1)),))),
                 "household.members.birth_date", id="D1-born-after-as_of"),
])
def test_D1_invalid_requests_name_the_field(req, field):
    with pytest.raises(InvalidRequest) as exc:
        assess(req, POLICY)
    assert exc.value.errors[0][0] == field
