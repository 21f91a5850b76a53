"""Benchmark: one monthly payroll run (P5) for N beneficiaries vs asyncpg binary COPY, same run.

Usage: .venv/bin/python bench/payroll.py [--n 1000000] [--dsn postgresql://postgres@127.0.0.1:5432/test]

Creates its own database on the server of ``--dsn`` (dropped at the end), migrates it, seeds N
active 低保/特困 entitlements in one county with COPY (not timed), books the county budget, then
times the payroll use case exactly as ``POST /v1/payroll-runs`` runs it: one transaction with
the set-based ``INSERT … SELECT … ON CONFLICT DO NOTHING`` of N payments, N + 1 ledger entries
(a debit per beneficiary's payable, one credit to the county budget), the budget balance moved,
the run row, the audit entry and the ``payments.payroll.completed`` outbox event. It checks the
result (N payments, balanced ledger transaction, one event), times a re-run of the same month
(nothing new may be created), and reports peak RSS of this process (resource.getrusage).

Reference in the same run: asyncpg binary COPY of N payment rows (the same columns and values
the run writes) into a table with a primary key and the unique (entitlement_id, month, kind)
index. Prints both times and the ratio (PERFORMANCE.md: aim ≤ 3× COPY, < 60 s, < 1 GiB).
"""
from __future__ import annotations

import argparse
import asyncio
import platform
import random
import resource
import sys
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from shared.auth import Principal  # noqa: E402
from shared.calendar import default_calendar  # noqa: E402
from shared.logging import configure_logging  # noqa: E402
from shared.migrations import upgrade_head  # noqa: E402
from shared.runtime import ServiceRuntime  # noqa: E402

from services.payments.app import SERVICE_DIR  # noqa: E402
from services.payments.composition import Payments  # noqa: E402
from services.payments.domain import ledger as dl  # noqa: E402
from services.payments import ledger  # noqa: E402
from services.payments.models import person_vault  # noqa: E402
from services.payments.settings import Settings  # noqa: E402
from shared.pii import PersonVault  # noqa: E402

COUNTY = "522701000000"
TOWNSHIPS = [f"522701{t:03d}000" for t in range(1, 21)]
MONTH = date(2026, 11, 1)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def person_id(i: int) -> str:
    return f"5227011950{i:08d}"


_VAULT = PersonVault(Settings().data_encryption_key, person_vault)


def person_key(i: int) -> str:
    """What payments stores for the person (shared/pii.py): the keyed hash, never the number."""
    return _VAULT.key(person_id(i))


async def seed(dsn: str, n: int, rng: random.Random) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        now = datetime.now(timezone.utc)
        start = date(2026, 1, 1)
        batch = 200_000
        for lo in range(0, n, batch):
            ents, amounts, vault = [], [], []
            for i in range(lo, min(n, lo + batch)):
                sealed = _VAULT.seal(person_id(i))
                vault.append((sealed["person_key"], sealed["person_enc"]))
                eid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                monthly = rng.randrange(300_00, 1500_00)
                ents.append((eid, "dibao" if i % 5 else "tekun", TOWNSHIPS[i % len(TOWNSHIPS)], COUNTY, sealed["person_key"],
                             1 + i % 4, monthly, start, start, None, "active", now))
                amounts.append((eid, start, monthly))
            await conn.copy_records_to_table(
                "entitlements", records=ents,
                columns=["id", "program", "region_code", "county_code", "payee_person_id", "covered_count",
                         "monthly_fen", "amount_from", "first_month", "last_month", "status", "updated_at"])
            await conn.copy_records_to_table("entitlement_amounts", records=amounts,
                                             columns=["entitlement_id", "effective_month", "monthly_fen"])
            await conn.copy_records_to_table("person_vault", records=vault, columns=["person_key", "person_enc"])
        await conn.execute("ANALYZE entitlements; ANALYZE entitlement_amounts")
    finally:
        await conn.close()


async def copy_reference(dsn: str, n: int, rng: random.Random) -> float:
    """asyncpg binary COPY of N payment rows into a table with a PK and the unique index."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("""
            CREATE TABLE copy_reference (LIKE payments INCLUDING DEFAULTS);
            ALTER TABLE copy_reference ADD PRIMARY KEY (id);
            CREATE UNIQUE INDEX uq_copy_reference ON copy_reference (entitlement_id, month, kind);""")
        now = datetime.now(timezone.utc)
        run_id = str(uuid.uuid4())
        rows = []
        for i in range(n):
            eid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            rows.append((f"B202611-{eid}", "benefit", "dibao", eid, MONTH, run_id, person_key(i),
                         TOWNSHIPS[i % len(TOWNSHIPS)], "county_budget:" + COUNTY, rng.randrange(300_00, 1500_00),
                         "ready", 0, 0, now))
        columns = ["id", "kind", "program", "entitlement_id", "month", "run_id", "person_id", "region_code",
                   "source_account", "amount_fen", "status", "attempt", "send_count", "created_at"]
        t0 = time.perf_counter()
        await conn.copy_records_to_table("copy_reference", records=rows, columns=columns)
        return time.perf_counter() - t0
    finally:
        await conn.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    configure_logging("WARNING", True)
    rng = random.Random(args.seed)
    name = f"bench_payroll_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = args.dsn.rsplit("/", 1)[0]
    dsn = f"{base}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    runtime = None
    try:
        await asyncio.to_thread(upgrade_head, SERVICE_DIR, url)
        t0 = time.perf_counter()
        await seed(dsn, args.n, rng)
        seed_s = time.perf_counter() - t0

        settings = Settings(database_url=url, bank_dispatch=False, scan_interval_s=0, log_level="WARNING")
        runtime = ServiceRuntime(settings, service_dir=SERVICE_DIR, migrate_on_start=False)
        app = Payments(runtime, settings, default_calendar(), None)
        async with runtime.uow() as tx:  # the county budget (from an appropriation)
            await ledger.post(tx.session, [dl.debit(dl.county_budget(COUNTY), 10**13),
                                           dl.credit(dl.appropriation(COUNTY), 10**13)],
                              kind="appropriation", actor="bench", region_code=COUNTY)
        officer = Principal(sub="bench", role="county_finance", region=COUNTY, name="bench")
        rss_before = rss_mib()

        t0 = time.perf_counter()
        status, run = await app.payroll.run(officer, region_code=COUNTY, month="2026-11")
        payroll_s = time.perf_counter() - t0
        rss_peak = rss_mib()

        t0 = time.perf_counter()
        again_status, again = await app.payroll.run(officer, region_code=COUNTY, month="2026-11")
        rerun_s = time.perf_counter() - t0

        async with runtime.session_factory() as s:
            n_pay = await s.scalar(sa.text("SELECT count(*) FROM payments"))
            n_ent, balance_check = (await s.execute(sa.text(
                "SELECT count(*), sum(CASE side WHEN 'D' THEN amount_fen ELSE -amount_fen END) FROM ledger_entries "
                "WHERE transaction_id = :t"), {"t": run["ledger_transaction_id"]})).one()
            n_events = await s.scalar(sa.text("SELECT count(*) FROM outbox WHERE type = 'payments.payroll.completed'"))
        assert status == 201 and run["payments_created"] == args.n == n_pay, (status, run, n_pay)
        assert n_ent == args.n + 1 and balance_check == 0 and n_events == 1, (n_ent, balance_check, n_events)
        assert again_status == 200 and again["new_payments"] == 0

        await runtime.engine.dispose()
        runtime = None
        copy_s = await copy_reference(dsn, args.n, rng)

        print(f"payroll benchmark — {args.n:,} active beneficiaries, PostgreSQL "
              f"{(await admin.fetchval('SHOW server_version'))}, Python {platform.python_version()}, "
              f"{platform.machine()}")
        print(f"  seed (COPY entitlements + amounts + person vault, not timed): {seed_s:.1f} s")
        print(f"  payroll run: {payroll_s:.2f} s  ({args.n / payroll_s:,.0f} payments/s; {args.n:,} payments, "
              f"{n_ent:,} ledger entries, 1 outbox event, total {run['total']} yuan)")
        print(f"  peak RSS of this process: {rss_peak:.0f} MiB (before the run: {rss_before:.0f} MiB)")
        print(f"  re-run of the same month: {rerun_s:.2f} s, {again['new_payments']} new payments")
        print(f"  reference, asyncpg binary COPY of {args.n:,} payment rows (PK + unique index): {copy_s:.2f} s")
        print(f"  ratio payroll / COPY: {payroll_s / copy_s:.2f}×   (targets: < 60 s, < 1024 MiB, aim ≤ 3×)")
        ok = payroll_s < 60 and rss_peak < 1024
        print("  result:", "PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if runtime is not None:
            await runtime.engine.dispose()
        if not args.keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
