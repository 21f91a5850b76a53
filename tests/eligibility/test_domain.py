"""Pure parts of the service layer: stored inputs (compact households), the means test's
combination of partner facts (D1), benefit changes (D2/D3 raise/lower, D5 gradual exit, stop),
and the re-evaluation hot path checked against the engine's own dataclasses and event schema."""
from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal as D

import orjson
import pytest

from bench.eligibility_engine import household_request, load_policy
from services.eligibility import audit
from services.eligibility.domain.changes import add_months, classify, exit_until, marginal_band, rule_codes
from services.eligibility.domain.inputs import (
    FastRequest, compact_household, fast_household, household_from_json, request_from_json, request_json,
)
from services.eligibility.domain.means_test import Fact, apply_facts, required_sources
from services.eligibility.domain.rules import AssessmentRequest, assess
from services.eligibility.models import person_vault
from services.eligibility.reevaluation import (
    DEC_COLS, OUT_COLS, Context, compute_batch, trace_json, uuid7s,
)
from shared.events.eligibility import BenefitChanged
from shared.messaging.envelope import Envelope
from shared.pii import PersonVault
from shared.settings import DEV_DATA_KEY

VAULT = PersonVault(DEV_DATA_KEY, person_vault)

POLICY = load_policy()          # national defaults + EXAMPLE county standards (800 / 600)
AS_OF = date(2026, 11, 1)


def _raw(req: AssessmentRequest) -> dict:
    hh = req.household
    return {"members": [{"person_id": m.person_id, "birth_date": m.birth_date.isoformat(),
                         "monthly_income": str(m.monthly_income), "disability_grade": m.disability_grade,
                         "disability_kind": m.disability_kind, "serious_illness": m.serious_illness,
                         "in_school": m.in_school, "labor_capacity": m.labor_capacity, "self_care": m.self_care}
                        for m in hh.members],
            "rigid_expenses_monthly": str(hh.rigid_expenses_monthly),
            "employment_costs_monthly": str(hh.employment_costs_monthly), "single_parent": hh.single_parent,
            "only_child": hh.only_child, "pure_daughter": hh.pure_daughter, "land_lost": hh.land_lost,
            "has_able_legal_supporter": hh.has_able_legal_supporter}


def test_stored_households_and_the_hot_path_assess_exactly_like_the_engine_dataclasses() -> None:
    """D1–D5, T1–T2 on 3,000 random households: compact JSON → dataclasses and → fast slot
    objects give the same Assessment as the original request; the trace JSON equals to_dict()."""
    rng = random.Random(7)
    for _ in range(3000):
        req = household_request(rng)
        if req.program == "linshi":
            continue
        stored = compact_household(_raw(req), assets_within_limits=req.household.assets_within_limits)
        text = orjson.dumps(stored)
        expected = assess(req, POLICY).to_dict()
        again = AssessmentRequest(req.program, req.area, req.as_of, household_from_json(orjson.loads(text)),
                                  req.current_benefit_monthly, None)
        assert assess(again, POLICY).to_dict() == expected
        fast = assess(FastRequest(req.program, req.area, req.as_of, fast_household(orjson.loads(text)),
                                  req.current_benefit_monthly), POLICY)  # type: ignore[arg-type]
        assert orjson.loads(trace_json(fast)) == expected


def test_stored_request_round_trip_with_hardship() -> None:
    hh = compact_household({"members": [{"person_id": "P1", "birth_date": "1990-01-01", "monthly_income": "0"}]},
                           assets_within_limits=True)
    stored = request_json(program="linshi", area="urban", as_of=AS_OF, region_code="522701001000", household=hh,
                          hardship={"kind": "expense", "months": 2, "expense_amount": D("900.00"),
                                    "description": "ignored"})
    req = request_from_json(orjson.loads(orjson.dumps(stored)))
    assert req.hardship is not None and req.hardship.expense_amount == D("900.00") and req.hardship.months == 2
    assert assess(req, POLICY).one_time_amount == D("900.00")  # L3: the smaller of the cap and the expense


def test_means_test_facts_d1() -> None:
    """D1: a member's income is the larger of declared and verified; any source finding assets
    above the limits fails the household; a stranger in a fact is reported, not counted."""
    hh = {"members": [{"person_id": "A", "birth_date": "1950-03-01", "monthly_income": "100.00"},
                      {"person_id": "B", "birth_date": "1980-03-01", "monthly_income": "900.00"}],
          "assets_within_limits": None}
    facts = [Fact("social_insurance", True, {"A": D("300.00")}, seq=1),
             Fact("housing_fund", None, {"A": D("50.00"), "B": D("200.00"), "X": D("1.00")}, seq=2),
             Fact("vehicles", True, {}, seq=3)]
    mt = apply_facts(hh, facts)
    assert mt.incomes == {"A": D("350.00"), "B": D("900.00")}
    assert mt.assets_within_limits is True
    assert any("成员1" in n and "350.00" in n for n in mt.notes)
    assert any("以外人员" in n for n in mt.notes)
    assert mt.household["members"][0]["monthly_income"] == "350.00"
    # the latest fact per source wins; a later vehicles answer with excess assets fails D1
    mt2 = apply_facts(hh, facts + [Fact("vehicles", False, {}, seq=4)])
    assert mt2.assets_within_limits is False and mt2.household["assets_within_limits"] is False
    assert required_sources("dibao") == required_sources("tekun") and len(required_sources("dibao")) == 6
    assert required_sources("linshi") == ()


@pytest.mark.parametrize("old_status, old_fen, outcome, new_fen, kw, expected", [
    ("active", 80000, "approved", 90000, {}, "raise"),                                  # D2
    ("active", 80000, "approved", 70000, {}, "lower"),                                  # D2
    ("active", 80000, "approved", 80000, {}, None),                                     # unchanged
    ("active", 8000, "gradual_exit", 8000, {}, "gradual_exit"),                         # D5
    ("exiting", 8000, "gradual_exit", 8000, {"as_of": date(2026, 12, 1),
                                             "old_exit_until": date(2027, 5, 31)}, None),
    ("exiting", 8000, "gradual_exit", 8000, {"as_of": date(2027, 6, 1),
                                             "old_exit_until": date(2027, 5, 31)}, "stop"),  # D5 period over
    ("exiting", 8000, "approved", 8000, {}, "raise"),                                   # exit cancelled
    ("active", 8000, "denied", 0, {}, "stop"),                                          # D1/D4
])
def test_classify_benefit_changes(old_status, old_fen, outcome, new_fen, kw, expected) -> None:
    assert classify(old_status, old_fen, outcome, new_fen, **kw) == expected


def test_dates_codes_and_marginal_band() -> None:
    assert add_months(date(2026, 8, 31), 6) == date(2027, 2, 28)
    assert exit_until(date(2026, 11, 24), 6) == date(2027, 5, 23)
    assert rule_codes(["D3", "D1-assets", "D2", "D1", "D6"]) == "D1、D2、D3、D6"
    kw = dict(rigid=D(0), employment=D(0), standard=D("800"), multiplier=D("1.5"))
    assert marginal_band(incomes=[D("1000")], **kw)          # M5: S ≤ pci < 1.5 S
    assert not marginal_band(incomes=[D("799.99")], **kw)
    assert not marginal_band(incomes=[D("1200")], **kw)
    ids = uuid7s(1000)
    assert len(set(ids)) == 1000 and all(uuid.UUID(i).version == 7 for i in ids)


def test_reevaluation_batch_writes_valid_events_and_rows() -> None:
    """The hot path's hand-built envelopes parse as the kernel's Envelope and validate as
    BenefitChanged; unchanged households produce nothing (D2, D5)."""
    rng = random.Random(3)
    rows = []
    for i in range(400):
        req = household_request(rng)
        if req.program == "linshi":
            continue
        a = assess(AssessmentRequest(req.program, req.area, AS_OF, req.household, None, None), POLICY)
        if not a.eligible:
            continue
        hh = compact_household(_raw(req), assets_within_limits=req.household.assets_within_limits)
        fen = int(a.monthly_amount.scaleb(2)) + (0 if i % 3 else 5000)   # every third case changes
        # the household's numbers as eligibility stores them beside the household (sealed per case)
        numbers = {"P0": "number-P0"} | {m["person_id"]: f"number-{m['person_id']}" for m in hh["members"]}
        rows.append((f"case-{i:04d}", "522701001001", req.program, req.area, "active", a.outcome, fen, None,
                     orjson.dumps(hh).decode(), "ref-decision", False, "P0", orjson.dumps(a.covered_members).decode(),
                     VAULT.seal_numbers(f"case-{i:04d}", numbers)))
    ctx = Context(job_id="job-1", action="policy", trigger_text="政策调整", as_of=AS_OF, policy_seq=3,
                  resolver=lambda region: POLICY, now=datetime.now(timezone.utc), correlation_id="corr-1",
                  actor=audit.SYSTEM, open_numbers=VAULT.open_numbers)
    out = compute_batch(rows, ctx)  # the events carry the numbers, not the stored keys
    assert out.counts["processed"] == len(rows)
    assert out.counts["changed"] == len(out.decisions) == len(out.outbox) == len(out.updates) > 0
    assert out.counts["unchanged"] + out.counts["changed"] == len(rows)
    for dec, ob in zip(out.decisions, out.outbox):
        assert len(dec) == len(DEC_COLS) and len(ob) == len(OUT_COLS)
        env = Envelope.from_bytes(ob[4])
        data = BenefitChanged.model_validate(env.data)
        assert data.applicant_person_id == "number-P0" and all(p.startswith("number-") for p in data.covered_person_ids)
        assert env.type == BenefitChanged.TYPE and env.subject == data.case_id == dec[2] == ob[2]
        assert env.correlation_id == "corr-1" and data.policy_version == POLICY.version_id
        assert data.change in ("raise", "lower", "gradual_exit", "stop") and "（D" in data.reason
        assert orjson.loads(dec[20])["policy_version"] == POLICY.version_id  # the full trace
        assert orjson.loads(dec[19])["household_ref"] == "ref-decision"     # inputs by reference
