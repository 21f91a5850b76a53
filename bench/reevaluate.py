"""Benchmark: re-evaluating every active 低保/特困 case of a county after a new standard.

Usage: .venv/bin/python bench/reevaluate.py [--n 1000000] [--batch 5000] [--dsn postgresql://postgres@127.0.0.1:5432/test]
                                            [--no-reference] [--keep]

Creates its own PostgreSQL database (dropped at the end unless --keep), migrates it with the
service's alembic migrations, and then:

1. loads the national defaults and publishes the county's current standard (urban 800, rural
   600) through the service (``PolicyService.publish``);
2. seeds ``--n`` active cases into ``benefits`` with COPY — each with its household as the
   table stores it (compact JSON, ``domain/inputs.py``) and its current amount computed by the
   engine under the current standard (4,096 distinct household shapes from the engine
   benchmark's generator, every case with its own identity numbers, spread over 1,000 villages);
3. publishes a new standard (urban 850, rural 640; effective today) through the service and
   runs the re-evaluation job it creates (``ReevaluationService.run_job``: keyset batches,
   engine, COPY of decisions with full traces and outbox events, one UPDATE … FROM unnest per
   batch) — timed, with the engine's and the database's shares and the peak RSS of this
   process during the job (VmHWM reset just before it);
4. checks the result (decision rows and outbox events = changed cases), and
5. runs the reference of PERFORMANCE.md in the same run: stream the same households by keyset,
   assess each with the terse pure function of bench/eligibility_engine.py (no explanations,
   no events), COPY the amounts back — and prints the ratio.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import sys
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.eligibility_engine import cpu_model, household_request, terse  # noqa: E402
from services.eligibility.app import SERVICE_DIR  # noqa: E402
from services.eligibility.cases import CaseService  # noqa: E402
from services.eligibility.domain.changes import fen  # noqa: E402
from services.eligibility.domain.inputs import compact_household, household_from_json  # noqa: E402
from services.eligibility.domain.rules import AssessmentRequest, assess  # noqa: E402
from services.eligibility.models import person_vault  # noqa: E402
from services.eligibility.policies import PolicyService, today  # noqa: E402
from services.eligibility.reevaluation import ReevaluationService  # noqa: E402
from services.eligibility.settings import Settings  # noqa: E402
from shared.auth import Principal  # noqa: E402
from shared.messaging.inprocess import InProcessBus  # noqa: E402
from shared.migrations import upgrade_head_async  # noqa: E402
from shared.pii import PersonVault  # noqa: E402
from shared.runtime import ServiceRuntime  # noqa: E402

COUNTY = "522701000000"
OFFICER = Principal(sub="bench-officer", role="county_civil_affairs", region=COUNTY, name="基准测试")
VAULT = PersonVault(Settings().data_encryption_key, person_vault)
BENEFIT_COLS = ("case_id", "region_code", "program", "area", "status", "outcome", "monthly_fen", "exit_until",
                "covered", "applicant_person_id", "overridden", "review_needed", "decision_id", "policy_version",
                "updated_at")
HOUSEHOLD_COLS = ("case_id", "household", "household_ref", "numbers_enc")


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def templates(policy, as_of: date, count: int, seed: int) -> list[tuple[str, str, dict, int, str, list[int]]]:
    """(program, area, compact household, current fen, outcome, covered member indexes) of
    household shapes that currently receive a benefit under ``policy``."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        req = household_request(rng)
        if req.program == "linshi":
            continue
        req = AssessmentRequest(req.program, req.area, as_of, req.household, None, None)
        a = assess(req, policy)
        if not a.eligible:
            continue
        raw = {"members": [{"person_id": m.person_id, "birth_date": m.birth_date.isoformat(),
                            "monthly_income": str(m.monthly_income), "disability_grade": m.disability_grade,
                            "disability_kind": m.disability_kind, "serious_illness": m.serious_illness,
                            "in_school": m.in_school, "labor_capacity": m.labor_capacity, "self_care": m.self_care}
                           for m in req.household.members],
               "rigid_expenses_monthly": str(req.household.rigid_expenses_monthly),
               "employment_costs_monthly": str(req.household.employment_costs_monthly),
               "single_parent": req.household.single_parent, "only_child": req.household.only_child,
               "pure_daughter": req.household.pure_daughter, "land_lost": req.household.land_lost,
               "has_able_legal_supporter": req.household.has_able_legal_supporter}
        hh = compact_household(raw, assets_within_limits=req.household.assets_within_limits)
        ids = [m.person_id for m in req.household.members]
        covered = [ids.index(p) for p in a.covered_members]
        out.append((req.program, req.area, hh, fen(a.monthly_amount), a.outcome, covered))
    return out


async def seed(conn: asyncpg.Connection, n: int, shapes: list, version: str) -> float:
    t0 = time.perf_counter()
    now = datetime.now(timezone.utc)
    chunk = 50_000
    dumps = orjson.dumps
    for start in range(0, n, chunk):
        rows = []
        households = []
        vault = []
        for i in range(start, min(n, start + chunk)):
            program, area, hh, cur, outcome, covered_idx = shapes[i % len(shapes)]
            village = i % 1000
            region = f"522701{1 + village // 50:03d}{1 + village % 50:03d}"
            members = []
            ids = []
            numbers = {}
            for k, m in enumerate(hh["members"]):
                # eligibility stores person keys (shared/pii.py), the numbers encrypted in the vault
                sealed = VAULT.seal(f"5227{i:010d}{k:02d}0X"[:18])
                vault.append((sealed["person_key"], sealed["person_enc"]))
                numbers[sealed["person_key"]] = f"5227{i:010d}{k:02d}0X"[:18]
                ids.append(sealed["person_key"])
                members.append({**m, "person_id": sealed["person_key"]})
            household = {**hh, "members": members}
            case_id = str(uuid.UUID(int=i + 1))
            rows.append((case_id, region, program, area, "active", outcome, cur, None,
                         dumps([ids[j] for j in covered_idx]).decode(), ids[0], False, False, case_id, version, now))
            households.append((case_id, dumps(household).decode(), case_id, VAULT.seal_numbers(case_id, numbers)))
        await conn.copy_records_to_table("benefits", records=rows, columns=BENEFIT_COLS)
        await conn.copy_records_to_table("benefit_households", records=households, columns=HOUSEHOLD_COLS)
        await conn.copy_records_to_table("person_vault", records=vault, columns=["person_key", "person_enc"])
    await conn.execute("VACUUM ANALYZE benefits")
    await conn.execute("VACUUM ANALYZE benefit_households")
    return time.perf_counter() - t0


async def reference(conn: asyncpg.Connection, policy, as_of: date, batch: int) -> tuple[float, float, float, int]:
    """PERFORMANCE.md's floor: keyset-stream the households, terse function, COPY amounts back."""
    await conn.execute("CREATE UNLOGGED TABLE ref_results (case_id text PRIMARY KEY, monthly_fen bigint)")
    params = policy.params
    t_read = t_calc = t_write = 0.0
    cursor = ("", "")
    n = 0
    while True:
        t0 = time.perf_counter()
        rows = await conn.fetch(
            "SELECT b.case_id, b.region_code, b.program, b.area, CAST(h.household AS TEXT) FROM benefits b "
            "JOIN benefit_households h ON h.case_id = b.case_id "
            "WHERE (b.region_code, b.case_id) > ($1, $2) ORDER BY b.region_code, b.case_id LIMIT $3",
            cursor[0], cursor[1], batch)
        t1 = time.perf_counter()
        t_read += t1 - t0
        if not rows:
            break
        out = []
        for case_id, _, program, area, hh in rows:
            req = AssessmentRequest(program, area, as_of, household_from_json(orjson.loads(hh)), None, None)
            out.append((case_id, fen(terse(req, params))))
        t2 = time.perf_counter()
        t_calc += t2 - t1
        await conn.copy_records_to_table("ref_results", records=out, columns=("case_id", "monthly_fen"))
        t_write += time.perf_counter() - t2
        n += len(rows)
        cursor = (rows[-1][1], rows[-1][0])
    return t_read, t_calc, t_write, n


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--lanes", type=int, default=Settings().reevaluation_lanes)
    ap.add_argument("--dsn", default=os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    args = ap.parse_args()

    dbname = f"bench_reeval_{os.getpid()}"
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f'CREATE DATABASE "{dbname}"')
    base = args.dsn.rsplit("/", 1)[0]
    dsn = f"{base}/{dbname}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    print(f"python {platform.python_version()}, cpu: {cpu_model()} × {os.cpu_count()}, database {dbname}")
    try:
        await upgrade_head_async(SERVICE_DIR, url)
        settings = Settings(database_url=url, environment="test", reevaluation_batch_size=args.batch,
                            reevaluation_lanes=args.lanes,
                            log_level="WARNING")
        runtime = ServiceRuntime(settings, service_dir=SERVICE_DIR, bus=InProcessBus(), migrate_on_start=False)
        policies = PolicyService(runtime, settings)
        cases = CaseService(runtime, settings, policies)
        reeval = ReevaluationService(runtime, settings, policies, cases)
        await policies.load_defaults()
        as_of = today()
        _, old = await policies.publish(COUNTY, date(as_of.year, 1, 1),
                                        {"dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00"},
                                        "bench: current standard", OFFICER)
        await reeval.run_job(old["reevaluation_id"])  # nothing to do yet
        _, old_policy, _ = await policies.resolved(COUNTY, as_of)

        t0 = time.perf_counter()
        shapes = templates(old_policy, as_of, 4096, args.seed)
        conn = await asyncpg.connect(dsn)
        t_seed = await seed(conn, args.n, shapes, old["id"])
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('benefits') "
                                   "+ pg_total_relation_size('benefit_households'))")
        print(f"seeded {args.n:,} active cases ({len(shapes)} household shapes) in {time.perf_counter() - t0:.1f} s "
              f"(COPY {t_seed:.1f} s); benefits + households {size}")
        del shapes
        gc.collect()

        status, new = await policies.publish(COUNTY, as_of, {"dibao_standard_urban": "850.00",
                                                             "dibao_standard_rural": "640.00"},
                                             "bench: new standard", OFFICER)
        assert status == 201
        rss_before = rss_mib()
        peak_reset = reset_peak_rss()
        t0 = time.perf_counter()
        job = await reeval.run_job(new["reevaluation_id"])
        total = time.perf_counter() - t0
        peak = rss_mib("VmHWM") if peak_reset else float("nan")

        decisions_n = await conn.fetchval("SELECT count(*) FROM decisions WHERE reevaluation_id = $1", job["id"])
        events_n = await conn.fetchval("SELECT count(*) FROM outbox WHERE type = 'eligibility.benefit.changed'")
        assert job["status"] == "done", job
        assert job["processed"] == args.n and decisions_n == job["changed"] == events_n, (job, decisions_n, events_n)
        sizes = await conn.fetchrow(
            "SELECT pg_size_pretty(pg_total_relation_size('decisions')) d, pg_size_pretty(pg_total_relation_size('outbox')) o")
        engine_s, db_s = job["engine_ms"] / 1000, job["db_ms"] / 1000
        other = max(0.0, total - engine_s - db_s)
        print(f"re-evaluation job: {args.n:,} cases in {total:.1f} s ({args.n / total:,.0f} cases/s), batches of {args.batch}, {args.lanes} lanes")
        lanes = "" if args.lanes == 1 else f" — summed over {args.lanes} lanes that overlap each other and the engine"
        print(f"  engine (decode + assess with explanations + trace/event encoding, one thread): {engine_s:.1f} s busy "
              f"= {engine_s / total:.0%} of the wall time")
        print(f"  database (keyset read FOR UPDATE, COPY decisions+outbox, UPDATE benefits, progress): "
              f"{db_s:.1f} s waited{lanes}" + (f"; other {other:.1f} s" if args.lanes == 1 else ""))
        print(f"  changed {job['changed']:,} (raise {job['raised']:,}, lower {job['lowered']:,}, "
              f"gradual_exit {job['gradual_exit']:,}, stop {job['stopped']:,}), unchanged {job['unchanged']:,}; "
              f"decision rows {decisions_n:,} ({sizes['d']}), outbox events {events_n:,} ({sizes['o']})")
        print(f"  RSS before {rss_before:.0f} MiB, peak during the job {peak:.0f} MiB"
              + ("" if peak_reset else " (VmHWM reset unavailable)"))
        print(f"  target < 300 s and < 2048 MiB: {'PASS' if total < 300 and peak < 2048 else 'FAIL'}; "
              f"aim < 60 s and < 1024 MiB: {'PASS' if total < 60 and peak < 1024 else 'not yet'}")

        if not args.no_reference:
            _, new_policy, _ = await policies.resolved(COUNTY, as_of)
            t0 = time.perf_counter()
            r_read, r_calc, r_write, rn = await reference(conn, new_policy, as_of, args.batch)
            ref = time.perf_counter() - t0
            print(f"reference (keyset read, terse function without explanations, COPY amounts): {ref:.1f} s "
                  f"(read {r_read:.1f}, compute {r_calc:.1f}, write {r_write:.1f}) for {rn:,} cases; "
                  f"job/reference = {total / ref:.2f}")
        await conn.close()
        await runtime.engine.dispose()
    finally:
        if not args.keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
