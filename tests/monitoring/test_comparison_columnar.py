"""M2 monthly CSV files through the columnar reader (DuckDB, PostgreSQL): the same records, errors,
warnings, register exits and events as the row-by-row reader, on random registers and files; a
re-upload changes nothing; a bad row in a big file is reported and the rest processed."""
from __future__ import annotations

import asyncio
import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.crypto import FieldCipher
from shared.messaging.tables import outbox
from tests.support import auth, make_id

from services.monitoring.columnar import ColumnarCsv, MatchKey, count_lines
from services.monitoring.domain.reference import load_reference_lines
from services.monitoring.domain.rows import RowParser
from services.monitoring.models import (comparison_file_errors, partner_records, register, register_history,
                                        warnings)
from tests.monitoring.helpers import harness

TYPES = ["death", "medical_expense", "unemployment", "disability_certified", "school_enrollment",
         "poverty_monitoring"]
EXCHANGE = {"partner_types": {"provincial_data_exchange": TYPES}}
CATEGORIES = ["dibao", "tekun", "marginal", "unstable_post_poverty", "at_risk_of_poverty", "sudden_hardship",
              "other_low_income"]
VILLAGES = ["522701001001", "522701001002", "522701002003"]
TODAY = date(2026, 9, 29)
HEADER = "type,person_id,occurred_on,amount,grade,stage,category,region_code,monthly_per_capita_income,labor_capacity,reference"


def people(n: int) -> list[str]:
    return [make_id(date(1950, 1, 1) + timedelta(days=i * 7), i % 1000) for i in range(n)]


def random_file(rnd: random.Random, pool: list[str], n: int) -> tuple[str, int]:
    """A mixed CSV of ``n`` rows: mostly well-formed deaths and medical expenses, some of every other
    type, and bad rows of every kind the columnar reader must hand to RowParser. Returns (text, bad rows)."""
    lines = [HEADER]
    bad = 0
    for k in range(n):
        pid = rnd.choice(pool) if rnd.random() < 0.6 else make_id(date(1940, 1, 1) + timedelta(days=rnd.randrange(20000)),
                                                                  rnd.randrange(1000), "522702")
        day = (date(2026, 9, 1) + timedelta(days=rnd.randrange(28))).isoformat()
        ref = rnd.choice(["", f"R{k}", f"\"R{k}, copy\"", "参考", "x" * 64])
        r = rnd.random()
        if r < 0.3:
            row = ["death", pid, day, "", "", "", "", "", "", "", ref]
        elif r < 0.75:
            amount = rnd.choice([f"{rnd.randrange(1000, 90000)}.{rnd.randrange(100):02d}", "20000", "19999.99",
                                 f"{rnd.randrange(100, 900000)}"])
            row = ["medical_expense", pid, day, amount, "", "", "", "", "", "", ref]
        elif r < 0.8:
            row = ["unemployment", pid, day, "", "", "", "", "", "", "", ref]
        elif r < 0.83:
            row = ["disability_certified", pid, day, "", str(rnd.randrange(1, 5)), "", "", "", "", "", ref]
        elif r < 0.86:
            row = ["school_enrollment", pid, day, "", "", "primary", "", "", "", "", ref]
        elif r < 0.9:
            row = ["poverty_monitoring", pid, day, "", "", "", rnd.choice(["unstable_post_poverty", "at_risk_of_poverty"]),
                   rnd.choice(VILLAGES), rnd.choice(["", "300.00", "1200.00"]), rnd.choice(["", "none", "full"]), ref]
        else:
            bad += 1
            broken = rnd.choice([
                lambda: ["death", pid[:-1] + ("0" if pid[-1] != "0" else "1"), day],     # check digit
                lambda: ["death", pid, "2026-02-30"],                                    # no such day
                lambda: ["death", pid, "2026-9-01"],                                     # not ISO
                lambda: ["death", pid, "2027-01-01"],                                    # future
                lambda: ["medical_expense", pid, day, ""],                               # amount missing
                lambda: ["medical_expense", pid, day, "oops"],                           # amount
                lambda: ["flood", pid, day],                                             # type
                lambda: ["", pid, day],                                                  # type missing
                lambda: ["death", "52270119500101001", day],                             # 17 characters
                lambda: ["death", pid, day, "", "", "", "", "", "", "", "y" * 65],       # reference too long
            ])()
            row = broken + [""] * (11 - len(broken))
            if rnd.random() < 0.5 and row[0] == "medical_expense" and row[3] == "":
                row[3] = "\"1,000\""  # quoted: one field; parse_money's message, through RowParser
        lines.append(",".join(row))
    return "\n".join(lines) + "\n", bad


async def seed_register(h, pool: list[str], rnd: random.Random) -> None:
    """The register keeps person keys (shared/pii.py), as the service writes it."""
    key = FieldCipher(h.app.state.runtime.settings.data_encryption_key).index
    rows = []
    for pid in pool:
        for cat in rnd.sample(CATEGORIES, rnd.choice([1, 1, 2])):
            rows.append({"person_id": key(pid), "category": cat, "region_code": rnd.choice(VILLAGES),
                         "since": date(2025, 1, 1), "source_type": "test", "updated_at": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    async with h.app.state.runtime.session_factory() as s:
        await s.execute(register.insert(), rows)
        await s.commit()


async def upload(h, raw: bytes) -> dict:
    r = await h.client.post("/v1/comparison-files", content=raw,
                            params={"format": "csv", "kind": "mixed", "partner_id": "provincial_data_exchange"},
                            headers=auth("monitoring_operator") | {"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    return r.json()


async def outcome(h, file_id: str) -> dict:
    """Everything a comparison leaves behind, without ids and timestamps."""
    async with h.app.state.runtime.session_factory() as s:
        errs = (await s.execute(sa.select(comparison_file_errors.c.row_no, comparison_file_errors.c.field,
                                          comparison_file_errors.c.message)
                                .where(comparison_file_errors.c.file_id == file_id)
                                .order_by(comparison_file_errors.c.row_no, comparison_file_errors.c.field))).all()
        w = (await s.execute(sa.select(warnings.c.dedupe_key, warnings.c.rule, warnings.c.kind, warnings.c.label,
                                       warnings.c.level, warnings.c.person_id, warnings.c.region_code,
                                       warnings.c.covered, warnings.c.source_type, warnings.c.occurred_on,
                                       warnings.c.amount, warnings.c.grade, warnings.c.due_on,
                                       warnings.c.due_provisional, partner_records.c.row_no)
                             .join(partner_records, partner_records.c.id == warnings.c.source_record_id)
                             .order_by(warnings.c.dedupe_key))).all()
        reg = (await s.execute(sa.select(register.c.person_id, register.c.category, register.c.region_code,
                                         register.c.since, register.c.source_type)
                               .order_by(register.c.person_id, register.c.category))).all()
        hist = (await s.execute(sa.select(register_history.c.person_id, register_history.c.category,
                                          register_history.c.action, register_history.c.valid_from,
                                          register_history.c.valid_to, register_history.c.reason,
                                          register_history.c.source_type)
                                .order_by(register_history.c.person_id, register_history.c.category,
                                          register_history.c.action))).all()
        events = (await s.execute(sa.select(outbox.c.type, outbox.c.key).where(outbox.c.type != "monitoring.comparison.completed")
                                  .order_by(outbox.c.type, outbox.c.key))).all()
        stored = await s.scalar(sa.select(sa.func.count()).select_from(partner_records)
                                .where(partner_records.c.file_id == file_id))
    return {"errors": errs, "warnings": w, "register": reg, "history": hist, "events": events, "stored": stored}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_columnar_reader_equals_row_by_row_reader_on_random_registers(pg_databases, seed):
    rnd = random.Random(seed)
    pool = people(300)
    text, bad = random_file(rnd, pool, 1500)
    raw = text.encode()
    results = {}
    for columnar in (True, False):
        url = await asyncio.to_thread(pg_databases.new, "col" if columnar else "row")
        async with harness(url, comparison_columnar=columnar, **EXCHANGE) as h:
            await seed_register(h, pool, random.Random(seed))
            f = await upload(h, raw)
            results[columnar] = (f, await outcome(h, f["id"]))
    (fc, oc), (fr, orow) = results[True], results[False]
    keys = ("rows_total", "rows_ok", "rows_failed", "errors_stored", "warnings_raised", "deaths_detected",
            "register_entries")
    assert {k: fc[k] for k in keys} == {k: fr[k] for k in keys}
    assert fc["rows_failed"] == bad > 0 and fc["warnings_raised"] > 0 and fc["deaths_detected"] > 0
    for part in ("errors", "warnings", "register", "history", "events"):
        assert oc[part] == orow[part], part
    # the row-by-row reader stores every good row; the columnar one only what the comparison acts on
    assert orow["stored"] == fr["rows_ok"]
    assert len({w.row_no for w in oc["warnings"]}) <= oc["stored"] < fc["rows_ok"]


async def test_reupload_of_a_columnar_file_changes_nothing(pg_databases):
    rnd = random.Random(7)
    pool = people(200)
    text, _ = random_file(rnd, pool, 800)
    async with harness(await asyncio.to_thread(pg_databases.new, "re"), **EXCHANGE) as h:
        await seed_register(h, pool, random.Random(7))
        first = await upload(h, text.encode())
        before = await outcome(h, first["id"])
        again = await upload(h, text.encode())
        after = await outcome(h, again["id"])
        assert first["warnings_raised"] > 0 and first["deaths_detected"] > 0
        assert (again["warnings_raised"], again["deaths_detected"]) == (0, 0)
        assert again["rows_ok"] == first["rows_ok"] and again["errors_stored"] == first["errors_stored"]
        for part in ("warnings", "register", "history", "events"):
            assert after[part] == before[part], part


async def test_bad_rows_in_a_big_file_are_reported_and_the_rest_processed(pg_databases):
    """20,000 rows with bad ones among them: the columnar reader reports each (row, field); a row
    with a wrong number of fields sends the file to the row-by-row reader, with the same outcome."""
    pool = people(500)
    rows = [HEADER]
    expected: dict[int, set] = {0: set(), 1: set()}  # (person, day) of good rows in the register: one warning each
    for i in range(20_000):
        pid = pool[(i // 10) % 500] if i % 10 == 0 else make_id(date(1941, 1, 1) + timedelta(days=i), i % 1000, "522702")
        rows.append(f"medical_expense,{pid},2026-09-{1 + i % 28:02d},{25000 + i}.50,,,,,,,M{i}")
        if i % 10 == 0 and i not in (5000, 12000):
            expected[0].add((pid, 1 + i % 28))
            if i != 15000:
                expected[1].add((pid, 1 + i % 28))
    rows[5001] = rows[5001].replace("2026-09-", "2026-19-")  # row 5002: bad date
    rows[12001] = rows[12001].replace(".50,", ".5x,")        # row 12002: not an amount
    good = "\n".join(rows) + "\n"
    structural = good.replace(rows[15001], rows[15001] + ",extra")  # row 15002: 12 fields
    async with harness(await asyncio.to_thread(pg_databases.new, "big"), **EXCHANGE) as h:
        await seed_register(h, pool, random.Random(3))
        f = await upload(h, good.encode())
        assert (f["rows_total"], f["rows_ok"], f["rows_failed"]) == (20_000, 19_998, 2)
        errs = (await h.client.get(f["errors_url"], headers=auth("monitoring_operator"))).json()["errors"]
        assert [(e["row"], e["field"]) for e in errs] == [(5002, "occurred_on"), (12002, "amount")]
        o = await outcome(h, f["id"])
        assert o["stored"] == 1998  # 1 row in 10 is of someone in the register, two of those are bad
        assert f["warnings_raised"] == len(o["warnings"]) == len(expected[0])
    async with harness(await asyncio.to_thread(pg_databases.new, "big2"), **EXCHANGE) as h:
        await seed_register(h, pool, random.Random(3))
        f = await upload(h, structural.encode())
        assert (f["rows_total"], f["rows_ok"], f["rows_failed"]) == (20_000, 19_997, 3)
        errs = (await h.client.get(f["errors_url"], headers=auth("monitoring_operator"))).json()["errors"]
        assert [(e["row"], e["field"]) for e in errs] == [(5002, "occurred_on"), (12002, "amount"), (15002, "row")]
        o = await outcome(h, f["id"])
        assert o["stored"] == 19_997  # the row-by-row reader stores every good row
        assert f["warnings_raised"] == len(o["warnings"]) == len(expected[1])


def test_columnar_reader_refuses_what_it_cannot_read_as_the_csv_module_does(tmp_path: Path):
    """Multi-line records, blank lines, wrong field counts, invalid UTF-8, long lines, mixed line ends
    and breaks only str.splitlines knows all go to the row-by-row reader (read() is False)."""
    p = tmp_path / "f.csv"
    header = ["type", "person_id", "occurred_on"]
    head = b"type,person_id,occurred_on\n"
    for body, readable in [(b"death,1,2\n", True), (b"death,1,2", True), (b'death,"1, 2",3\n', True),
                           (b'death,"1\n2",3\n', False), (b"death,1,2\n\ndeath,1,2\n", False),
                           (b"death,1,2,\n", False), (b"death,1\n", False), (b"death,\xff,2\n", False),
                           (b"death,1," + b"x" * 2000 + b"\n", False), (b"death,1,2\r\ndeath,1,2\n", False),
                           (b"death,1\x0c,2\n", False), ("death,1\u2028,2\n".encode(), False),
                           (b"death,1\r,2\n", False)]:
        p.write_bytes(head + body)
        with ColumnarCsv(p, header, kind="mixed", allowed_types=None, today=TODAY, threshold=Decimal("20000")) as col:
            assert col.read(count_lines(p), 1024) is readable, body
    p.write_bytes(b"type,person_id,occurred_on\r\ndeath,1,2\r\n")
    with ColumnarCsv(p, header, kind="mixed", allowed_types=None, today=TODAY, threshold=Decimal("20000")) as col:
        assert col.read(count_lines(p), 1024)


def test_keyed_match_key_is_the_cipher_index_vectorised():
    """The swap to encrypted ID numbers: MatchKey's DuckDB HMAC equals FieldCipher.index."""
    import duckdb
    cipher = FieldCipher("test-secret-for-the-index")
    key = MatchKey(cipher._index_key)
    ids = [make_id(date(1960, 1, 1) + timedelta(days=i), i) for i in range(50)]
    con = duckdb.connect()
    got = [r[0] for r in con.execute(f"SELECT {key.sql('pid')} FROM unnest(?) AS t(pid)", [ids]).fetchall()]
    assert got == [cipher.index(i) for i in ids] == [key.one(i) for i in ids]
    assert MatchKey().sql("pid") == "pid" and MatchKey().one(ids[0]) == ids[0]


_field = st.one_of(
    st.sampled_from(["", "death", "medical_expense", "x", "2026-09-01", "2026-9-01", "0000-01-01", "2026-02-29",
                     "2027-01-01", "20000", "19999.99", "1e5", " 100", "+100", "100.001", "参考", "y" * 65]),
    st.text(alphabet="0123456789X-. x", max_size=20))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from(["death", "medical_expense", "", "unemployment"]),
                               st.one_of(st.sampled_from(people(5)), _field, st.builds(
                                   lambda b, s: b[:6] + s + b[14:], st.sampled_from(people(5)),
                                   st.sampled_from(["19000101", "18991231", "20260929", "20260930", "19600230"]))),
                               _field, _field, _field), min_size=1, max_size=30),
       kind=st.sampled_from(["mixed", "death", "medical_expense"]))
def test_fast_rows_are_exactly_rowparser_fast_records(tmp_path: Path, rows, kind):
    """Property: a row DuckDB accepts is one RowParser accepts, as the same record (the rest goes to RowParser)."""
    header = ["type", "person_id", "occurred_on", "amount", "reference"]
    p = tmp_path / "p.csv"
    with p.open("w", encoding="utf-8", newline="") as fh:
        import csv
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    lines = count_lines(p)
    parser = RowParser(kind, today=TODAY, reference=load_reference_lines())
    parser.use_header(header)
    with ColumnarCsv(p, header, kind=kind, allowed_types=None, today=TODAY, threshold=Decimal("20000")) as col:
        if not col.read(lines, 65536):
            return
        col.classify()
        fast = {r[0] for r in col.con.execute("SELECT row_no FROM v WHERE fast").fetchall()}
    for i, values in enumerate(rows, start=2):
        rec = parser.parse_csv(list(values))
        if i in fast:
            assert not isinstance(rec, list), (values, rec)
            # the staged values are the raw fields: they must be what RowParser's record holds
            assert rec.type == (values[0] or kind) and rec.person_id == values[1]
            assert rec.occurred_on.isoformat() == values[2] and rec.reference == (values[4] or None)
            assert rec.amount == (values[3] if rec.type == "medical_expense" else None)
