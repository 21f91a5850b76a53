"""Benchmark: the eligibility engine (with explanations) vs a terse reference, same run.

Usage: .venv/bin/python bench/eligibility_engine.py [--n 200000] [--seed 1]

Generates a seeded mix of households (dibao / tekun / linshi, 1–6 members), resolves the
policy once (national defaults + the EXAMPLE county standards), then times on one core:

* ``assess`` — the engine, full breakdown and reasons (texts) for every household;
* ``terse`` — API.md's semantics written as one compact pure function (Decimal, no
  explanations), defined below independently of the engine.

Both run over the same households; the bench asserts they agree on every amount (monthly for
dibao/tekun, one-time for linshi), so the reference is honest. Prints households/s for both,
the ratio, the Python version and the CPU model (PERFORMANCE.md: compare within one run).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.eligibility.domain.policy import PolicyParams, resolve, validate_params  # noqa: E402
from services.eligibility.domain.rules import (  # noqa: E402
    AssessmentRequest, Hardship, Household, Member, assess,
)

DATA = ROOT / "services" / "eligibility" / "data"
AS_OF = date(2026, 11, 1)
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


# ----------------------------------------------------------------------------- reference

def terse(req: AssessmentRequest, p: PolicyParams) -> Decimal:
    """API.md semantics in one function: the monthly (dibao/tekun) or one-time (linshi) amount."""
    q = lambda d: d.quantize(CENT, ROUND_HALF_UP)  # noqa: E731
    hh, a = req.household, req.as_of
    ms, n = hh.members, len(hh.members)
    U = p.dibao_standard_urban
    S = U if req.area == "urban" else p.dibao_standard_rural
    age = lambda b: a.year - b.year - ((b.month, b.day) > (a.month, a.day))  # noqa: E731
    if req.program == "linshi":
        h = req.hardship
        amt = U * n * min(h.months, p.linshi_max_months)
        return q(amt if h.kind == "emergency" else min(amt, h.expense_amount))
    if req.program == "tekun":
        fee = {"full": p.tekun_care_fee_full_self_care, "partial": p.tekun_care_fee_partial,
               "none": p.tekun_care_fee_none}
        total = ZERO
        for m in ms:
            g, ag = m.disability_grade, age(m.birth_date)
            minor = ag < p.tekun_minor_age
            if ((ag >= p.elderly_age or minor or g in (1, 2)
                 or (g == 3 and m.disability_kind in ("intellectual", "mental")))
                    and (minor or m.labor_capacity == "none")
                    and m.monthly_income < S and not hh.has_able_legal_supporter):
                total += q(p.tekun_multiplier * U + fee[m.self_care])
        return total
    if not hh.assets_within_limits:
        return ZERO
    net = max(sum(m.monthly_income for m in ms) - hh.rigid_expenses_monthly
              - hh.employment_costs_monthly, ZERO)
    fam = hh.single_parent or (req.area == "rural"
                               and (hh.only_child or hh.pure_daughter or hh.land_lost))

    def tier(m: Member) -> Decimal:
        g, c = m.disability_grade, [ZERO]
        if g in (1, 2) or m.serious_illness:
            c.append(q(S * p.tier_rate_severe))
        if age(m.birth_date) >= p.elderly_age or m.in_school:
            c.append(q(S * p.tier_rate_elderly_or_student))
        if fam:
            c.append(q(S * p.tier_rate_family))
        if g in (3, 4):
            c.append(q(p.tier_flat_mild_disability))
        return max(c)

    if net < S * n:
        return q(S * n - net) + sum(tier(m) for m in ms)
    if net < p.marginal_multiplier * S * n:
        if req.current_benefit_monthly is not None:
            return q(req.current_benefit_monthly)
        return sum((q(max(S - m.monthly_income, ZERO)) + tier(m) for m in ms
                    if m.disability_grade in (1, 2) or m.serious_illness), ZERO)
    return ZERO


# ----------------------------------------------------------------------------- data

def load_policy():
    versions = []
    for name, vid in (("default_policy.json", "root-defaults"), ("example_standards.json", "example-522701")):
        doc = json.loads((DATA / name).read_text(encoding="utf-8"))
        values, errors = validate_params(doc["params"])
        assert not errors, errors
        versions.append((vid, doc["region_code"], doc["effective_from"], values))
    return resolve(versions, AS_OF, "522701001000").policy()


def money(rng: random.Random, hi: int) -> Decimal:
    return Decimal(rng.randrange(0, hi * 100 + 1)) / 100


def member(rng: random.Random, k: int) -> Member:
    birth = date(1930, 1, 1) + timedelta(days=rng.randrange(0, (AS_OF - date(1930, 1, 1)).days))
    ag = AS_OF.year - birth.year
    r = rng.random()
    grade = rng.choice((1, 2, 3, 4)) if r < 0.18 else None
    kind = rng.choice(("physical", "visual", "hearing", "speech", "intellectual", "mental",
                       "multiple")) if grade else None
    old_or_dis = ag >= 60 or grade in (1, 2)
    labor = rng.choice(("none", "none", "partial")) if old_or_dis else rng.choice(
        ("full", "full", "partial", "none"))
    income = ZERO if rng.random() < 0.4 else money(rng, 1500)
    return Member(person_id=f"P{k:06d}", birth_date=birth, monthly_income=income,
                  disability_grade=grade, disability_kind=kind,
                  serious_illness=rng.random() < 0.06,
                  in_school=6 <= ag <= 22 and rng.random() < 0.7,
                  labor_capacity=labor, self_care=rng.choice(("full", "full", "partial", "none")))


def household_request(rng: random.Random) -> AssessmentRequest:
    program = rng.choices(("dibao", "tekun", "linshi"), weights=(45, 40, 15))[0]
    n = rng.randint(1, 6)
    members = tuple(member(rng, rng.randrange(1_000_000)) for _ in range(n))
    hh = Household(
        members=members,
        rigid_expenses_monthly=money(rng, 600) if rng.random() < 0.2 else ZERO,
        employment_costs_monthly=money(rng, 200) if rng.random() < 0.1 else ZERO,
        single_parent=rng.random() < 0.1, only_child=rng.random() < 0.1,
        pure_daughter=rng.random() < 0.05, land_lost=rng.random() < 0.05,
        assets_within_limits=rng.random() < 0.92,
        has_able_legal_supporter=rng.random() < 0.4)
    current = money(rng, 2000) if program == "dibao" and rng.random() < 0.2 else None
    hardship = None
    if program == "linshi":
        kind = rng.choice(("emergency", "expense"))
        hardship = Hardship(kind, rng.randint(1, 8),
                            money(rng, 20000) if kind == "expense" else None)
    return AssessmentRequest(program=program, area=rng.choice(("urban", "rural")), as_of=AS_OF,
                             household=hh, current_benefit_monthly=current, hardship=hardship)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def time_engine(reqs, policy) -> tuple[float, list]:
    """Time ``assess`` streaming: each Assessment (texts included) is built in full, its amount
    kept for the comparison and the object dropped, as a consumer writing results out would
    (keeping 200k object graphs alive would only measure the cyclic GC rescanning them)."""
    out = []
    append = out.append
    t0 = time.perf_counter()
    for r in reqs:
        a = assess(r, policy)
        append(a.monthly_amount if a.one_time_amount is None else a.one_time_amount)
    return time.perf_counter() - t0, out


def time_engine_to_dict(reqs, policy) -> float:
    """``assess`` followed by ``to_dict()`` (the JSON-ready body the API returns)."""
    t0 = time.perf_counter()
    for r in reqs:
        assess(r, policy).to_dict()
    return time.perf_counter() - t0


def time_terse(reqs, params) -> tuple[float, list]:
    out = []
    append = out.append
    t0 = time.perf_counter()
    for r in reqs:
        append(terse(r, params))
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    try:                                   # one core
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass

    policy = load_policy()
    rng = random.Random(args.seed)
    reqs = [household_request(rng) for _ in range(args.n)]
    gc.collect()
    gc.freeze()                            # the inputs are not garbage; don't rescan them

    time_engine(reqs[:5000], policy)      # warm both paths (and the policy cache)
    time_terse(reqs[:5000], policy.params)
    t_engine, results = time_engine(reqs, policy)
    t_terse, amounts = time_terse(reqs, policy.params)

    t_dict = time_engine_to_dict(reqs, policy)
    per_program = {}
    for prog in ("dibao", "tekun", "linshi"):
        sub = [r for r in reqs if r.program == prog]
        if sub:
            per_program[prog] = (len(sub) / time_engine(sub, policy)[0],
                                 len(sub) / time_terse(sub, policy.params)[0])

    outcomes: dict[str, int] = {}
    for req, got, amt in zip(reqs, results, amounts):
        assert got == amt, (req, got, amt)
    for req in reqs:                       # untimed: outcomes, and lines add up to the amount
        res = assess(req, policy)
        key = f"{req.program}:{res.outcome}"
        outcomes[key] = outcomes.get(key, 0) + 1
        total = res.one_time_amount if req.program == "linshi" else res.monthly_amount
        assert sum((b.amount for b in res.breakdown), ZERO) == total or not res.eligible
        assert all(r.code and r.text and r.source for r in res.reasons)

    programs = {p: sum(1 for r in reqs if r.program == p) for p in ("dibao", "tekun", "linshi")}
    mean_n = sum(len(r.household.members) for r in reqs) / len(reqs)
    print(f"python {platform.python_version()} ({platform.python_implementation()}), "
          f"cpu: {cpu_model()}")
    print(f"households: {args.n} (seed {args.seed}; {programs}; mean size {mean_n:.2f})")
    print(f"outcomes: {dict(sorted(outcomes.items()))}")
    print(f"engine (assess, with explanations): {args.n / t_engine:>10,.0f} households/s "
          f"({t_engine:.2f} s)")
    print(f"terse reference (no explanations):  {args.n / t_terse:>10,.0f} households/s "
          f"({t_terse:.2f} s)")
    print(f"ratio engine/terse: {t_terse / t_engine:.2f}  "
          f"(amounts agree on all {args.n} households)")
    print(f"engine + to_dict() (API body):      {args.n / t_dict:>10,.0f} households/s")
    for prog, (e, t) in per_program.items():
        print(f"  {prog:<7} engine {e:>10,.0f}/s   terse {t:>10,.0f}/s   ratio {e / t:.2f}")


if __name__ == "__main__":
    main()
