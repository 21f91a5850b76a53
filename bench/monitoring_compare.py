"""Monthly comparison benchmark (PERFORMANCE.md): a 5,000,000-person register against 300,000 partner
records (deaths and medical expenses) in one CSV file, through monitoring's real upload path
(``ComparisonFileService.upload``, what ``POST /v1/comparison-files`` calls: spool → DuckDB checks
the rows over columns → COPY of the rows the rules act on into a temporary stage → one register
probe per person → set-based INSERT … SELECT of partner records, warnings, register exits and
outbox rows, one transaction), against PostgreSQL.

In the same run, the references:
  * the PostgreSQL floor: COPY the same CSV into a staging table + one join against the indexed register;
  * DuckDB: the same join with the warning rules' filter and the service's one-warning-per-key
    dedupe, from the CSV against the register in Parquet — timed without loading the register
    into Parquet (the reference ratio) and with it (reported too);
  * the durable-write floor: INSERT … SELECT of exactly the rows the service wrote (partner
    records, warnings, register history, outbox) into empty copies of those tables with the same
    indexes, and the DELETE of the dead from a copy of the register — what writing them costs
    before any comparison logic;
  * the HMAC cost: FieldCipher.index over the partner rows' ID numbers (Python loop) and the same
    HMAC vectorised in DuckDB (columnar.MatchKey) — what matching on an encrypted register's
    index column would add.

    .venv/bin/python bench/monitoring_compare.py [--register 5000000] [--records 300000] [--profile]

Needs PostgreSQL at postgresql://postgres@127.0.0.1:5432/test (TEST_PG_DSN overrides); creates and
drops its own database. DuckDB (``pip install duckdb``) is optional: without it that reference is skipped.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.auth import Principal  # noqa: E402
from shared.migrations import upgrade_head  # noqa: E402

ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SERVICE_DIR = ROOT / "services" / "monitoring"
THRESHOLD = 20000
# the person keys (shared/pii.py) are HMACs with the index key derived from the service's DATA_ENCRYPTION_KEY
from shared.crypto import cipher_for  # noqa: E402
from services.monitoring.settings import Settings as _MonitoringSettings  # noqa: E402

DATA_KEY = _MonitoringSettings().data_encryption_key
INDEX_KEY = cipher_for(DATA_KEY).index_key
_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"

CHECK_DIGIT_SQL = """
CREATE FUNCTION bench_ric(body text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT substr('10X98765432', ((""" + " + ".join(
    f"substr(body,{i + 1},1)::int*{w}" for i, w in enumerate(_W)) + """) % 11) + 1, 1)
$$"""

# 5M people: birth dates over 20,000 days × 250 sequence numbers, villages of 20 townships × 20 villages
REGISTER_SQL = """
INSERT INTO register (person_id, category, region_code, since, supply_mode, source_type, source_ref, updated_at)
SELECT encode(hmac(convert_to(b || bench_ric(b), 'UTF8'), $2::bytea, 'sha256'), 'hex'), c, rc, date '2025-01-01' + (i % 300), CASE WHEN c = 'tekun' THEN 'dispersed' END,
       'eligibility.decision.made', NULL, now()
FROM (
  SELECT i,
         '522701' || to_char(date '1940-01-01' + (i % 20000), 'YYYYMMDD') || lpad(((i / 20000) % 1000)::text, 3, '0') AS b,
         '522701' || lpad(((i / 7) % 20 + 1)::text, 3, '0') || lpad(((i / 13) % 20 + 1)::text, 3, '0') AS rc,
         CASE WHEN i % 20 < 8 THEN 'dibao' WHEN i % 20 = 8 THEN 'tekun' WHEN i % 20 < 13 THEN 'marginal'
              WHEN i % 20 < 16 THEN 'unstable_post_poverty' WHEN i % 20 < 18 THEN 'at_risk_of_poverty'
              WHEN i % 20 = 18 THEN 'sudden_hardship' ELSE 'other_low_income' END AS c
  FROM generate_series(0, $1 - 1) AS i
) s"""


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ric(body: str) -> str:
    return body + _CHECK[sum(int(c) * w for c, w in zip(body, _W)) % 11]


def register_person(i: int) -> str:
    born = date(1940, 1, 1) + timedelta(days=i % 20000)
    return ric(f"522701{born:%Y%m%d}{(i // 20000) % 1000:03d}")


def write_partner_csv(path: Path, n: int, register_size: int, seed: int = 20261124) -> dict[str, int]:
    """n rows: 20% deaths, 80% medical expenses; half of the people are in the register."""
    rnd = random.Random(seed)
    stats = {"deaths": 0, "medical": 0, "in_register": 0}
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["type", "person_id", "occurred_on", "amount", "reference"])
        for k in range(n):
            if rnd.random() < 0.5:
                pid = register_person(rnd.randrange(register_size))
                stats["in_register"] += 1
            else:
                born = date(1940, 1, 1) + timedelta(days=rnd.randrange(25000))
                pid = ric(f"522702{born:%Y%m%d}{rnd.randrange(1000):03d}")
            day = date(2026, 10, 1) + timedelta(days=rnd.randrange(31))
            if rnd.random() < 0.2:
                w.writerow(["death", pid, day.isoformat(), "", f"D{k}"])
                stats["deaths"] += 1
            else:
                w.writerow(["medical_expense", pid, day.isoformat(), f"{rnd.randrange(1000, 60000)}.{rnd.randrange(100):02d}",
                            f"M{k}"])
                stats["medical"] += 1
    return stats


async def setup(dsn: str, register_size: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(CHECK_DIGIT_SQL)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")  # hmac() for the person keys
        # bulk load without the indexes, then build them (what a one-off migration of the register would do)
        indexes = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'register' "
                                   "AND indexname <> 'register_pkey'")
        await conn.execute("ALTER TABLE register DROP CONSTRAINT register_pkey")
        for ix in indexes:
            await conn.execute(f'DROP INDEX "{ix["indexname"]}"')
        await conn.execute("SET max_parallel_workers_per_gather = 2")
        await conn.execute(REGISTER_SQL, register_size, INDEX_KEY)
        await conn.execute("ALTER TABLE register ADD PRIMARY KEY (person_id, category)")
        for ix in indexes:  # the migrations' own definitions
            await conn.execute(ix["indexdef"])
        await conn.execute("VACUUM ANALYZE register")
    finally:
        await conn.close()


async def file_chunks(path: Path, size: int = 1 << 16):
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


class StatementTimes:
    """--profile: the time of every statement and COPY of the upload, by what it does."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, str]] = []

    def install(self) -> None:
        from sqlalchemy.ext.asyncio import AsyncSession

        times = self.rows

        def wrap(owner: Any, name: str, label: Any) -> None:
            orig = getattr(owner, name)

            async def timed(self_: Any, *a: Any, **k: Any) -> Any:
                t = time.perf_counter()
                try:
                    return await orig(self_, *a, **k)
                finally:
                    times.append((time.perf_counter() - t, label(a)))
            setattr(owner, name, timed)

        wrap(AsyncSession, "execute", lambda a: " ".join(str(a[0]).split())[:90])
        wrap(AsyncSession, "commit", lambda a: "COMMIT")
        wrap(asyncpg.Connection, "copy_to_table", lambda a: f"COPY {a[0]}")

    def report(self, total: float) -> None:
        spent = sum(t for t, _ in self.rows)
        print(f"  breakdown (--profile): {total - spent:.2f} s outside PostgreSQL (spool, DuckDB, Python)")
        for t, what in self.rows:
            if t >= 0.02:
                print(f"    {t:6.2f} s  {what}")


async def run_service(dsn: str, csv_path: Path, profile: StatementTimes | None = None) -> tuple[float, dict]:
    from services.monitoring.app import create_app
    from services.monitoring.settings import Settings
    from shared.messaging.inprocess import InProcessBus

    url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    settings = Settings(database_url=url, log_level="WARNING",
                        partner_types={"provincial_data_exchange": ["death", "medical_expense"]},
                        outbox_poll_interval_s=3600)
    clock = lambda: datetime(2026, 11, 2, 2, 0, tzinfo=timezone.utc)  # noqa: E731
    app = create_app(settings, bus=InProcessBus(), clock=clock)
    runtime = app.state.runtime
    runtime.migrate_on_start = False
    operator = Principal(sub="bench-operator", role="monitoring_operator", region="522701000000", name="bench")
    async with app.router.lifespan_context(app):
        await runtime.relay.stop()  # the outbox is published after the benchmark, not during it
        if profile is not None:
            profile.install()
        t0 = time.perf_counter()
        result = await app.state.files.upload(operator, kind="mixed", fmt="csv", partner_id="provincial_data_exchange",
                                              filename=csv_path.name, chunks=file_chunks(csv_path), headers={})
        elapsed = time.perf_counter() - t0
        async with runtime.session_factory() as s:
            import sqlalchemy as sa
            result["outbox_rows"] = int(await s.scalar(sa.text("SELECT count(*) FROM outbox")))
    return elapsed, result


async def run_pg_floor(dsn: str, csv_path: Path) -> tuple[float, int]:
    conn = await asyncpg.connect(dsn)
    try:
        t0 = time.perf_counter()
        await conn.execute("CREATE TABLE floor_staging (type text, person_id text, occurred_on date, amount numeric, "
                           "reference text)")
        with csv_path.open("rb") as fh:
            await conn.copy_to_table("floor_staging", source=fh, format="csv", header=True)
        # the register holds person keys: the floor's join hashes the partner side as the service must
        await conn.execute("CREATE TABLE floor_out AS SELECT s.*, r.category, r.region_code FROM floor_staging s "
                           "JOIN register r ON r.person_id = encode(hmac(convert_to(s.person_id, 'UTF8'), $1::bytea, 'sha256'), 'hex')",
                           INDEX_KEY)
        elapsed = time.perf_counter() - t0
        n = await conn.fetchval("SELECT count(*) FROM floor_out")
        return elapsed, int(n)
    finally:
        await conn.close()


async def run_snapshot_read(dsn: str, path: Path) -> float:
    """The alternative to probing: read every register key (with category and village) in one COPY
    at the start of the run, to match in memory — what that read alone costs."""
    conn = await asyncpg.connect(dsn)
    try:
        t0 = time.perf_counter()
        await conn.copy_from_query("SELECT person_id, category, region_code FROM register", output=str(path),
                                   format="binary")
        return time.perf_counter() - t0
    finally:
        await conn.close()


async def export_register(dsn: str, path: Path) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_from_table("register", columns=["person_id", "category", "region_code"], output=str(path),
                                   format="csv", header=True)
    finally:
        await conn.close()


def run_duckdb(register_csv: Path, partner_csv: Path, workdir: Path) -> tuple[float, float, int, str, float] | None:
    """In a child process (its memory is its own); returns (seconds without loading the register,
    seconds of loading it into Parquet, warning rows, version, peak RSS MiB)."""
    try:
        import duckdb
    except ImportError:
        return None
    from services.monitoring.columnar import MatchKey
    con = duckdb.connect(str(workdir / "bench.duckdb"))
    parquet = workdir / "register.parquet"
    t0 = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM read_csv('{register_csv}', header=true, all_varchar=true)) "
                f"TO '{parquet}' (FORMAT parquet)")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    # the service's join, warning filter (deaths, medical expenses ≥ the threshold) and dedupe (one
    # warning per person for deaths, per type, person and day otherwise; the first row of the file wins)
    con.execute(f"""
        CREATE TABLE w AS
        SELECT * FROM (
            SELECT p.type, p.person_id, p.occurred_on, p.amount, min(r.region_code) AS region_code,
                   max(CASE WHEN r.category IN ('dibao', 'tekun') THEN 1 ELSE 0 END) AS covered, p.rn
            FROM (SELECT *, row_number() OVER () AS rn FROM read_csv('{partner_csv}', header=true,
                      columns={{'type': 'VARCHAR', 'person_id': 'VARCHAR', 'occurred_on': 'DATE',
                                'amount': 'DECIMAL(14,2)', 'reference': 'VARCHAR'}})) p
            JOIN read_parquet('{parquet}') r ON r.person_id = {MatchKey(INDEX_KEY).sql('p.person_id')}
            WHERE p.type = 'death' OR p.amount >= {THRESHOLD}
            GROUP BY p.type, p.person_id, p.occurred_on, p.amount, p.rn)
        QUALIFY row_number() OVER (PARTITION BY type, person_id, CASE WHEN type = 'death' THEN NULL ELSE occurred_on END
                                   ORDER BY rn) = 1""")
    elapsed = time.perf_counter() - t0
    n = con.execute("SELECT count(*) FROM w").fetchone()[0]
    con.close()
    return elapsed, load_s, int(n), duckdb.__version__, rss_mib()


async def run_write_floor(dsn: str) -> tuple[float, dict[str, int]]:
    """INSERT … SELECT of the rows the service wrote into empty copies with the same indexes, and the
    DELETE of the dead from a copy of the register's rows for them: the cost of the durable writes alone."""
    conn = await asyncpg.connect(dsn)
    try:
        counts = {}
        for t in ("partner_records", "warnings", "register_history", "outbox"):
            await conn.execute(f"CREATE TABLE floor_{t} (LIKE {t} INCLUDING ALL)")
            counts[t] = int(await conn.fetchval(f"SELECT count(*) FROM {t}"))
        await conn.execute("CREATE TABLE floor_register (LIKE register INCLUDING ALL)")
        # the dead were deleted from the register: put their rows back into the copy from the history
        await conn.execute("INSERT INTO floor_register (person_id, category, region_code, since, source_type, updated_at) "
                           "SELECT person_id, category, region_code, valid_from, source_type, recorded_at "
                           "FROM register_history WHERE action = 'leave'")
        await conn.execute("VACUUM ANALYZE floor_register")
        t0 = time.perf_counter()
        async with conn.transaction():
            for t in ("partner_records", "warnings", "register_history", "outbox"):
                await conn.execute(f"INSERT INTO floor_{t} SELECT * FROM {t}")
            await conn.execute("DELETE FROM floor_register")
        elapsed = time.perf_counter() - t0
        counts["register_deleted"] = counts["register_history"]
        return elapsed, counts
    finally:
        await conn.close()


def run_hmac_cost(partner_csv: Path) -> tuple[float, float, int]:
    """FieldCipher.index over the ID numbers of the rows the rules act on: a Python loop, and
    columnar.MatchKey's vectorised DuckDB HMAC (equal results; tested in tests/monitoring)."""
    import duckdb

    from services.monitoring.columnar import MatchKey
    from shared.crypto import FieldCipher

    cipher = FieldCipher(DATA_KEY)
    con = duckdb.connect()
    ids = [r[0] for r in con.execute(
        f"SELECT person_id FROM read_csv('{partner_csv}', header=true, all_varchar=true) "
        f"WHERE type = 'death' OR CAST(amount AS DECIMAL(14, 2)) >= {THRESHOLD}").fetchall()]
    t0 = time.perf_counter()
    looped = [cipher.index(i) for i in ids]
    loop_s = time.perf_counter() - t0
    key = MatchKey(cipher.index_key)
    t0 = time.perf_counter()
    con.execute(f"CREATE TABLE k AS SELECT {key.sql('person_id')} AS k FROM read_csv('{partner_csv}', header=true, "
                f"all_varchar=true) WHERE type = 'death' OR CAST(amount AS DECIMAL(14, 2)) >= {THRESHOLD}")
    duck_s = time.perf_counter() - t0
    assert con.execute("SELECT k FROM k LIMIT 1").fetchone()[0] == looped[0]
    con.close()
    return loop_s, duck_s, len(ids)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--register", type=int, default=5_000_000)
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--profile", action="store_true", help="time every statement of the upload")
    args = ap.parse_args()

    name = f"bench_monitoring_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    workdir = Path(tempfile.mkdtemp(prefix="monitoring-bench-"))
    try:
        t = time.perf_counter()
        await asyncio.to_thread(upgrade_head, SERVICE_DIR, dsn.replace("postgresql://", "postgresql+asyncpg://"))
        await setup(dsn, args.register)
        partner_csv = workdir / "partner-2026-10.csv"
        stats = write_partner_csv(partner_csv, args.records, args.register)
        print(f"setup: register {args.register:,} rows, partner file {args.records:,} rows "
              f"({partner_csv.stat().st_size / 2**20:.1f} MiB: {stats['deaths']:,} deaths, {stats['medical']:,} medical "
              f"expenses, {stats['in_register']:,} people in the register) in {time.perf_counter() - t:.1f} s; "
              f"peak RSS so far {rss_mib():.0f} MiB")

        # the references first: the service's run removes the dead from the register
        register_csv = workdir / "register.csv"
        await export_register(dsn, register_csv)
        floor_s, joined = await run_pg_floor(dsn, partner_csv)
        print(f"PostgreSQL floor (COPY to staging + one join): {floor_s:.2f} s ({joined:,} joined rows)")
        snap_s = await run_snapshot_read(dsn, workdir / "snapshot.bin")
        print(f"reading the whole register's keys in one binary COPY (an in-memory snapshot's first step): "
              f"{snap_s:.2f} s ({(workdir / 'snapshot.bin').stat().st_size / 2**20:.0f} MiB)")
        (workdir / "snapshot.bin").unlink()
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            duck = await asyncio.get_running_loop().run_in_executor(pool, run_duckdb, register_csv, partner_csv, workdir)
        register_csv.unlink()

        profile = StatementTimes() if args.profile else None
        service_s, result = await run_service(dsn, partner_csv, profile)
        service_rss = rss_mib()
        print(f"service (spool → DuckDB → COPY keys → probe → COPY matched partner records → INSERT…SELECT warnings, register "
              f"exits, outbox; one transaction): {service_s:.2f} s, peak RSS {service_rss:.0f} MiB")
        print(f"  rows ok {result['rows_ok']:,}, failed {result['rows_failed']:,}; warnings {result['warnings_raised']:,} "
              f"(deaths {result['deaths_detected']:,}); outbox rows {result['outbox_rows']:,}")
        if profile is not None:
            profile.report(service_s)
        write_s, written = await run_write_floor(dsn)
        print(f"durable-write floor (INSERT…SELECT of the same rows into empty copies with the same indexes: "
              f"{', '.join(f'{k} {v:,}' for k, v in written.items())}): {write_s:.2f} s")
        loop_s, duck_hmac_s, n_ids = await asyncio.get_running_loop().run_in_executor(None, run_hmac_cost, partner_csv)
        print(f"HMAC-SHA256 index of {n_ids:,} ID numbers: FieldCipher.index loop {loop_s:.2f} s; "
              f"vectorised in DuckDB (MatchKey) {duck_hmac_s:.2f} s")

        ok_time = service_s < 60
        ok_mem = service_rss < 4096
        print(f"ratio service / PostgreSQL floor: {service_s / floor_s:.2f}x (aim ≤ 5x)")
        if duck is not None:
            duck_s, load_s, duck_n, version, duck_rss = duck
            print(f"DuckDB {version} (CSV ⋈ Parquet register, same filter and dedupe; own process): {duck_s:.2f} s "
                  f"({duck_n:,} rows), peak RSS {duck_rss:.0f} MiB; loading the register into Parquet first: "
                  f"{load_s:.2f} s more")
            print(f"ratio service / DuckDB: {service_s / duck_s:.2f}x (target ≤ 3x; with DuckDB's register load "
                  f"counted: {service_s / (duck_s + load_s):.2f}x); PostgreSQL floor / DuckDB: {floor_s / duck_s:.2f}x; "
                  f"durable-write floor / DuckDB: {write_s / duck_s:.2f}x")
        else:
            print("DuckDB not installed: reference skipped (pip install duckdb)")
        print(f"target < 60 s and < 4 GiB: {'met' if ok_time and ok_mem else 'NOT met'} "
              f"({service_s:.2f} s, {service_rss:.0f} MiB)")
    finally:
        if not args.keep:
            admin = await asyncpg.connect(ADMIN_DSN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        for p in workdir.glob("*"):
            p.unlink()
        workdir.rmdir()


if __name__ == "__main__":
    asyncio.run(main())
