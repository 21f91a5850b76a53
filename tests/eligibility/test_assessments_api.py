"""POST /v1/assessments — the public calculator (API.md, FIXED): the exact 200 shape, every bad
input answered 422 problem+json naming the field, nothing stored, a region without a 低保
standard refused, a stale standard flagged (D1, 动态调整)."""
from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any, Callable

import pytest

from services.eligibility.models import cases, decisions, policy_versions, reevaluations
from shared.messaging.tables import outbox
from tests.eligibility.helpers import COUNTY, TOWNSHIP, app_for, count, publish
from tests.support import auth, make_id, running

RESPONSE_KEYS = ["eligible", "outcome", "monthly_amount", "one_time_amount", "covered_members", "approval_level",
                 "exit_months", "policy_version", "breakdown", "reasons"]
ELDER = make_id(date(1950, 3, 1), 1)


def body(**over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "program": "dibao", "region_code": TOWNSHIP, "area": "urban", "as_of": "2026-11-01",
        "household": {
            "members": [{"person_id": ELDER, "birth_date": "1950-03-01", "monthly_income": "100.00",
                         "disability_grade": None, "disability_kind": None, "serious_illness": False,
                         "in_school": False, "labor_capacity": "none", "self_care": "full"}],
            "rigid_expenses_monthly": "0.00", "employment_costs_monthly": "0.00", "single_parent": False,
            "only_child": False, "pure_daughter": False, "land_lost": False, "assets_within_limits": True,
            "has_able_legal_supporter": False},
        "current_benefit": None, "hardship": None}
    b.update(over)
    return b


def m0(**kw: Any) -> Callable[[dict], None]:
    def f(b: dict) -> None:
        b["household"]["members"][0].update(kw)
    return f


def hh(**kw: Any) -> Callable[[dict], None]:
    def f(b: dict) -> None:
        b["household"].update(kw)
    return f


def top(**kw: Any) -> Callable[[dict], None]:
    def f(b: dict) -> None:
        b.update(kw)
    return f


def drop(key: str) -> Callable[[dict], None]:
    def f(b: dict) -> None:
        b.pop(key)
    return f


BAD = [
    ("unknown program", top(program="wubao"), "program"),
    ("unknown area", top(area="suburban"), "area"),
    ("region code not 12 digits", top(region_code="5227"), "region_code"),
    ("as_of missing", drop("as_of"), "as_of"),
    ("as_of not a date", top(as_of="2026-13-01"), "as_of"),
    ("as_of a number", top(as_of=20261101), "as_of"),
    ("empty household", hh(members=[]), "household.members"),
    ("check digit wrong", m0(person_id=ELDER[:-1] + ("0" if ELDER[-1] != "0" else "1")), "household.members.0.person_id"),
    ("15-digit id", m0(person_id="522701500301002"), "household.members.0.person_id"),
    ("birth date in the future", m0(birth_date="2099-01-01"), "household.members.0.birth_date"),
    ("id with a future birth date", m0(person_id=make_id(date(2099, 1, 1), 2), birth_date="2099-01-01"),
     "household.members.0.person_id"),
    ("birth date after as_of", m0(person_id=make_id(date(2026, 11, 20), 2), birth_date="2026-11-20"),
     "household.members.0.birth_date"),
    ("birth date not the id's", m0(birth_date="1951-03-01"), "household.members.0.birth_date"),
    ("negative income", m0(monthly_income="-1.00"), "household.members.0.monthly_income"),
    ("non-numeric income", m0(monthly_income="lots"), "household.members.0.monthly_income"),
    ("float income", m0(monthly_income=100.5), "household.members.0.monthly_income"),
    ("negative rigid expenses", hh(rigid_expenses_monthly="-5"), "household.rigid_expenses_monthly"),
    ("unknown labor capacity", m0(labor_capacity="some"), "household.members.0.labor_capacity"),
    ("unknown self care", m0(self_care="mostly"), "household.members.0.self_care"),
    ("unknown disability kind", m0(disability_grade=2, disability_kind="other"), "household.members.0.disability_kind"),
    ("disability grade 5", m0(disability_grade=5), "household.members.0.disability_grade"),
    ("boolean as a string", m0(serious_illness="yes"), "household.members.0.serious_illness"),
    ("unknown member field", m0(nickname="老王"), "household.members.0.nickname"),
    ("unknown top-level field", top(channel="window"), "channel"),
    ("same person twice", lambda b: b["household"]["members"].append(dict(b["household"]["members"][0])),
     "household.members.1.person_id"),
    ("linshi without hardship", top(program="linshi"), "hardship"),
    ("expense without amount", top(program="linshi", hardship={"kind": "expense", "months": 2}),
     "hardship.expense_amount"),
    ("hardship months 0", top(program="linshi", hardship={"kind": "emergency", "months": 0}), "hardship.months"),
    ("unknown hardship kind", top(program="linshi", hardship={"kind": "flood", "months": 1}), "hardship.kind"),
    ("hardship on dibao", top(hardship={"kind": "emergency", "months": 1}), "hardship"),
    ("negative current benefit", top(current_benefit={"monthly_amount": "-3"}), "current_benefit.monthly_amount"),
]


async def test_calculator_exact_shape_amounts_and_nothing_stored(tmp_path: Path) -> None:
    """D1/D2/D3/D6: 1 elderly member, income 100, urban 800: (800 − 100) + 20% × 800 = 860.00."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db", load_example_standards=True)
    async with running(app) as c:
        before = {t.name: await count(app, t) for t in (cases, decisions, policy_versions, reevaluations, outbox)}
        r = await c.post("/v1/assessments", json=body())
        assert r.status_code == 200, r.text
        out = r.json()
        assert list(out) == RESPONSE_KEYS
        assert out["eligible"] is True and out["outcome"] == "approved" and out["monthly_amount"] == "860.00"
        assert out["one_time_amount"] is None and out["exit_months"] is None and out["approval_level"] == "township"
        assert out["policy_version"] == "pv-522701000000-20260101"          # the EXAMPLE county version
        assert [b["code"] for b in out["breakdown"]] == ["D2", "D3"]
        assert all(list(b) == ["code", "person_id", "amount", "text"] for b in out["breakdown"])
        assert all(list(x) == ["code", "text", "source"] for x in out["reasons"])
        assert sum(float(b["amount"]) for b in out["breakdown"]) == 860.0
        assert out["covered_members"] == [ELDER[:3] + "*" * 11 + ELDER[-4:]]   # masked for the public
        staff = (await c.post("/v1/assessments", json=body(), headers=auth("township_clerk"))).json()
        assert staff["covered_members"] == [ELDER]
        assert (await c.post("/v1/assessments", json=body(),
                             headers={"Authorization": "Bearer nonsense"})).status_code == 401
        after = {t.name: await count(app, t) for t in (cases, decisions, policy_versions, reevaluations, outbox)}
        assert after == before


async def test_calculator_names_each_bad_field_and_stores_nothing(tmp_path: Path) -> None:
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db", load_example_standards=True)
    async with running(app) as c:
        for label, mutate, field in BAD:
            b = copy.deepcopy(body())
            mutate(b)
            r = await c.post("/v1/assessments", json=b)
            assert r.status_code == 422, (label, r.text)
            assert r.headers["content-type"].startswith("application/problem+json"), label
            problem = r.json()
            assert {"type", "title", "status", "detail", "errors"} <= set(problem), label
            assert field in [e["field"] for e in problem["errors"]], (label, problem["errors"])
            assert ELDER not in r.text, label  # identity numbers are never echoed in errors
        r = await c.post("/v1/assessments", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        assert await count(app, cases) == 0 and await count(app, outbox) == 0


async def test_region_without_a_standard_is_refused_naming_region_code(tmp_path: Path) -> None:
    """POLICY.md §1: the 低保 standards are never defaulted; without one in force → 422."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db", load_example_standards=True)
    async with running(app) as c:
        r = await c.post("/v1/assessments", json=body(region_code="522702001000"))
        assert r.status_code == 422
        errors = r.json()["errors"]
        assert errors[0]["field"] == "region_code" and "dibao_standard_urban" in errors[0]["message"]
        # before the EXAMPLE county's standard took effect, too
        r = await c.post("/v1/assessments", json=body(as_of="2025-12-31",
                                                      household=body()["household"]))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "region_code"


async def test_stale_standard_is_flagged_not_silently_used(tmp_path: Path) -> None:
    """动态调整 (SX 二(三)5): a standard older than 12 months on as_of gets a D1 warning reason
    and the Policy-Stale header; the FIXED shape stays the same."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    async with running(app) as c:
        await publish(c, COUNTY, "2024-01-01", {"dibao_standard_urban": "700.00", "dibao_standard_rural": "500.00"},
                      auth("county_civil_affairs"))
        fresh = await c.post("/v1/assessments", json=body(as_of="2024-06-01"))
        assert fresh.status_code == 200 and "policy-stale" not in fresh.headers
        r = await c.post("/v1/assessments", json=body(as_of="2026-11-01"))
        assert r.status_code == 200 and r.headers["policy-stale"] == "true"
        out = r.json()
        assert list(out) == RESPONSE_KEYS and out["monthly_amount"] == "740.00"   # (700 − 100) + 140
        assert any(x["code"] == "D1" and "12 个月未调整" in x["text"] for x in out["reasons"])


@pytest.mark.parametrize("months, amount, level", [(1, "800.00", "township"), (2, "1600.00", "county")])
async def test_linshi_amount_and_approval_level(tmp_path: Path, months: int, amount: str, level: str) -> None:
    """L3: U × n × months; L4: above the township limit (1,500) the county approves."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db", load_example_standards=True)
    async with running(app) as c:
        r = await c.post("/v1/assessments", json=body(program="linshi",
                                                      hardship={"kind": "emergency", "months": months}))
        out = r.json()
        assert r.status_code == 200 and list(out) == RESPONSE_KEYS
        assert out["one_time_amount"] == amount and out["monthly_amount"] is None and out["approval_level"] == level


async def test_tekun_amount_t1_t2(tmp_path: Path) -> None:
    """T1: elderly, no labor capacity, own income below S, no able supporter; T2: 1.3 × U + the
    care fee for partial self-care: 1.3 × 800 + 200 = 1,240.00. An able supporter denies it."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db", load_example_standards=True)
    async with running(app) as c:
        b = body(program="tekun")
        b["household"]["members"][0]["self_care"] = "partial"
        out = (await c.post("/v1/assessments", json=b)).json()
        assert list(out) == RESPONSE_KEYS and out["outcome"] == "approved" and out["monthly_amount"] == "1240.00"
        assert [x["code"] for x in out["breakdown"]] == ["T2"] and "T1" in [x["code"] for x in out["reasons"]]
        b["household"]["has_able_legal_supporter"] = True
        out = (await c.post("/v1/assessments", json=b)).json()
        assert out["outcome"] == "denied" and out["eligible"] is False and out["covered_members"] == []
