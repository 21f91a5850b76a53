"""临时救助 (linshi) rules L1–L4, table-driven from the seeds (QN 二(四)) and API.md.

L3: one_time_amount = U · n · months (emergency); expense: the smaller of that and the
expense amount; months capped at linshi_max_months (6). L4: township when the amount is
≤ linshi_township_limit (1500.00), else county. U = 800.00 (EXAMPLE standards).
"""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from services.eligibility.domain.policy import PolicyParams, ResolvedPolicy, validate_params
from services.eligibility.domain.rules import (
    AssessmentRequest, Hardship, Household, InvalidRequest, Member, assess,
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


def linshi(n: int, kind: str, months: int, expense: str | None = None, area: str = "urban",
           policy: ResolvedPolicy = POLICY):
    members = tuple(Member(f"P{i}", date(1980, 1, 1), D("0.00")) for i in range(n))
    req = AssessmentRequest("linshi", area, AS_OF, Household(members),
                            hardship=Hardship(kind, months, None if expense is None else D(expense)))
    return assess(req, policy)


L3_L4_CASES = [
    # id, n, kind, months, expense, area, amount, level
    pytest.param(1, "emergency", 1, None, "urban", "800.00", "township", id="L3-emergency-1x1"),
    pytest.param(2, "emergency", 1, None, "urban", "1600.00", "county", id="L3-L4-emergency-2x1-county"),
    pytest.param(3, "emergency", 2, None, "urban", "4800.00", "county", id="L3-emergency-3x2"),
    pytest.param(1, "emergency", 6, None, "urban", "4800.00", "county", id="L3-emergency-6-months-max"),
    pytest.param(1, "emergency", 7, None, "urban", "4800.00", "county", id="L3-months-capped-at-6"),
    pytest.param(2, "emergency", 12, None, "urban", "9600.00", "county", id="L3-months-12-capped-at-6"),
    pytest.param(1, "emergency", 1, None, "rural", "800.00", "township",
                 id="L3-rural-still-uses-urban-standard"),
    pytest.param(1, "expense", 6, "1500.00", "urban", "1500.00", "township",
                 id="L4-expense-exactly-1500.00-township"),
    pytest.param(1, "expense", 6, "1500.01", "urban", "1500.01", "county",
                 id="L4-expense-1500.01-county"),
    pytest.param(1, "expense", 1, "3000.00", "urban", "800.00", "township",
                 id="L3-expense-capped-by-U-n-months"),
    pytest.param(4, "expense", 9, "20000.00", "urban", "19200.00", "county",
                 id="L3-expense-cap-with-months-capped"),
    pytest.param(2, "expense", 3, "1234.565", "urban", "1234.57", "township",
                 id="L3-expense-rounded-half-up"),
]


@pytest.mark.parametrize("n, kind, months, expense, area, amount, level", L3_L4_CASES)
def test_L3_L4_amount_and_approval_level(n, kind, months, expense, area, amount, level):
    res = linshi(n, kind, months, expense, area)
    assert (res.eligible, res.outcome) == (True, "approved")
    assert str(res.one_time_amount) == amount
    assert res.monthly_amount is None
    assert res.approval_level == level
    assert [(b.code, str(b.amount)) for b in res.breakdown] == [("L3", amount)]
    assert res.covered_members == [f"P{i}" for i in range(n)]
    assert [r.code for r in res.reasons] == ["L1", "L2", "L4"]


def test_L4_limit_exactly_1500_township_via_emergency():
    pol = make_policy(dibao_standard_urban=D("750.00"))
    assert linshi(1, "emergency", 2, policy=pol).approval_level == "township"   # 1500.00
    pol = make_policy(dibao_standard_urban=D("750.01"))
    assert linshi(1, "emergency", 2, policy=pol).approval_level == "county"     # 1500.02


def test_L4_limit_and_max_months_are_parameters():
    pol = make_policy(linshi_township_limit=D("5000.00"), linshi_max_months=3)
    res = linshi(1, "emergency", 6, policy=pol)
    assert (str(res.one_time_amount), res.approval_level) == ("2400.00", "township")


def test_L3_cap_is_explained():
    res = linshi(1, "emergency", 8)
    assert "（申请 8 个月，最长 6 个月）" in res.breakdown[0].text
    assert res.breakdown[0].text.endswith("= 4800.00 元（L3）")


def test_L1_L2_L4_reasons_and_sources():
    res = linshi(1, "expense", 1, "300.00")
    by_code = {r.code: r for r in res.reasons}
    assert by_code["L1"].source == "000_e289ce00f249d99f.txt 二(四)"
    assert "急难发生地" in by_code["L1"].text
    assert "支出型" in by_code["L2"].text and by_code["L2"].source == "003_dbf974436b87d268.txt 二(四)"
    assert "300.00" in by_code["L4"].text and "1500.00" in by_code["L4"].text
    assert by_code["L4"].source == "000_e289ce00f249d99f.txt 二(四)"


def test_L3_zero_expense_is_denied_with_zero_one_time_amount():
    res = linshi(1, "expense", 3, "0.00")
    out = res.to_dict()
    assert (out["eligible"], out["outcome"], out["one_time_amount"], out["monthly_amount"]) == (
        False, "denied", "0.00", None)
    assert out["breakdown"] == [] and out["covered_members"] == []
    assert out["approval_level"] == "township"


def test_L3_to_dict():
    out = linshi(2, "emergency", 1).to_dict()
    assert out["one_time_amount"] == "1600.00" and out["monthly_amount"] is None
    assert out["breakdown"][0]["amount"] == "1600.00" and out["exit_months"] is None


@pytest.mark.parametrize("hardship, field", [
    pytest.param(None, "hardship", id="L2-hardship-missing"),
    pytest.param(Hardship("flood", 1), "hardship.kind", id="L2-unknown-kind"),
    pytest.param(Hardship("emergency", 0), "hardship.months", id="L3-zero-months"),
    pytest.param(Hardship("expense", 2), "hardship.expense_amount", id="L3-expense-without-amount"),
    pytest.param(Hardship("expense", 2, D("-1.00")), "hardship.expense_amount", id="L3-negative-expense"),
])
def test_L2_L3_invalid_hardship(hardship, field):
    req = AssessmentRequest("linshi", "urban", AS_OF,
                            Household((Member("P0", date(1980, 1, 1), D("0.00")),)), hardship=hardship)
    with pytest.raises(InvalidRequest) as exc:
        assess(req, POLICY)
    assert exc.value.errors[0][0] == field
