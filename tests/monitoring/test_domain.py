"""Pure rules of monitoring: deadlines in working days (M3), periods and report due dates (M7),
request signing (M2), comparison-file rows (M2), the M4 reference line, register moves (M1, M5)."""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

from shared.calendar import default_calendar
from shared.idnumbers import is_valid_id_number

from services.monitoring.domain.periods import parse_period, report_due
from services.monitoring.domain.reference import load_reference_lines
from services.monitoring.domain.register import benefit_changes, decision_changes
from services.monitoring.domain.rows import Record, RowParser, _check_digit_ok, check_id
from services.monitoring.domain.rules import load_rules
from services.monitoring.domain.signing import body_digest, sign, signature_problem
from services.monitoring.schema_export import OUT, render, schemas
from services.monitoring.streams import MultipartFile, csv_rows, jsonl_rows
from tests.support import make_id

RULES = load_rules()
CAL = default_calendar()


@pytest.mark.parametrize("level, days, due", [(1, 3, date(2026, 10, 9)), (2, 5, date(2026, 10, 12)),
                                              (3, 10, date(2026, 10, 19))])
def test_m3_deadline_per_level_across_national_day_2026(level, days, due):
    """限时核查 from Tue 2026-09-29: Oct 1–7 are holidays, Sat Oct 10 is a make-up working day."""
    assert RULES.days(level) == days
    d = RULES.due(date(2026, 9, 29), level, CAL)
    assert (d.due, d.provisional) == (due, False)


def test_m3_deadline_in_a_year_without_calendar_data_is_provisional():
    d = RULES.due(date(2026, 12, 30), 2, CAL)
    assert d.provisional is True and d.due == date(2027, 1, 6)  # weekends only, marked provisional


def test_m3_levels_are_data():
    assert RULES.illness_level(Decimal("19999.99"), Decimal("20000")) is None
    assert RULES.illness_level(Decimal("20000"), Decimal("20000")) == 2
    assert RULES.illness_level(Decimal("60000"), Decimal("20000")) == 1
    assert (RULES.disability_level(2), RULES.disability_level(4)) == (1, 2)
    assert {k: (r.rule, r.level) for k, r in RULES.rules.items()} == {
        "death": ("M6", 1), "illness": ("M3", 2), "unemployment": ("M3", 3), "disability": ("M3", 2),
        "schooling": ("M3", 3), "coverage_gap": ("M4", 2)}
    assert "included" in RULES.close_results and "not_eligible" in RULES.close_results


@pytest.mark.parametrize("text, start, end, kind", [
    ("2026-02", date(2026, 2, 1), date(2026, 2, 28), "month"),
    ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31), "quarter"),
    ("2026-H1", date(2026, 1, 1), date(2026, 6, 30), "half_year")])
def test_periods(text, start, end, kind):
    p = parse_period(text)
    assert (p.start, p.end, p.kind) == (start, end, kind)


@pytest.mark.parametrize("bad", ["2026", "2026-00", "2026-Q5", "2026-H3", "26-01", ""])
def test_bad_periods(bad):
    with pytest.raises(ValueError):
        parse_period(bad)


def test_m7_report_due_dates():
    assert report_due("quarterly", parse_period("2026-Q2"))["due_before"] == "2026-06-20"
    assert report_due("half_yearly", parse_period("2026-H2"))["due_by"] == "2026-12-31"


def test_m2_signature():
    body = b'{"type":"death"}'
    sig = sign("k" * 32, "1790000000", "nonce-123", body)
    ok = dict(key="k" * 32, timestamp="1790000000", nonce="nonce-123", signature=sig, digest_hex=body_digest(body),
              now=1790000100, max_age_s=300)
    assert signature_problem(**ok) is None
    assert "stale" in signature_problem(**ok | {"now": 1790000301})
    assert "stale" in signature_problem(**ok | {"now": 1789999699})  # from the future, too
    assert "does not match" in signature_problem(**ok | {"digest_hex": body_digest(body + b" ")})
    assert "does not match" in signature_problem(**ok | {"key": "x" * 32})
    assert "unknown partner" in signature_problem(**ok | {"key": None})
    assert signature_problem(**ok | {"nonce": "a b"}) is not None


@settings(max_examples=300, deadline=None)
@given(st.dates(date(1901, 1, 1), date(2026, 9, 1)), st.integers(0, 999), st.sampled_from("0123456789X"))
def test_fast_id_check_agrees_with_shared_idnumbers(born, seq, last):
    pid = make_id(born, seq)
    candidate = pid[:17] + last
    assert _check_digit_ok(candidate) == is_valid_id_number(candidate)
    got, msg = check_id(candidate, date(2026, 11, 1))
    assert (got is not None) == is_valid_id_number(candidate)


def _parser(kind: str = "mixed") -> RowParser:
    return RowParser(kind, today=date(2026, 11, 1), reference=load_reference_lines())


def test_m2_rows_fast_and_slow_paths_agree():
    p = _parser()
    header = ["type", "person_id", "occurred_on", "amount", "reference"]
    p.use_header(header)
    pid = make_id(date(1950, 1, 1), 5)
    fast = p.parse_csv(["medical_expense", pid, "2026-10-01", "25000.50", "M-1"])
    slow = p.parse_flat(dict(zip(header, ["medical_expense", pid, "2026-10-01", "25000.50", "M-1"])))
    assert isinstance(fast, Record) and isinstance(slow, Record)
    assert (fast.type, fast.person_id, fast.occurred_on, Decimal(fast.amount)) == (
        slow.type, slow.person_id, slow.occurred_on, slow.amount)
    assert p.parse_csv(["medical_expense", pid, "2026-10-01", "-5", ""]) == [("amount", "must not be negative")]
    assert [f for f, _ in p.parse_csv(["death", pid, "2026-11-02", "", ""])] == ["occurred_on"]  # future
    assert [f for f, _ in p.parse_csv(["death", pid[:-1] + "Y", "2026-10-01", "", ""])] == ["person_id"]


def test_m4_rows_poverty_monitoring_looks_eligible():
    p = _parser("poverty_monitoring")
    base = {"person_id": make_id(date(1970, 1, 1), 9), "occurred_on": "2026-10-01", "category": "unstable_post_poverty",
            "region_code": "522701001001"}
    assert p.parse_flat(base | {"monthly_per_capita_income": "600.00"}).looks_eligible is True  # county line 650
    assert p.parse_flat(base | {"monthly_per_capita_income": "700.00"}).looks_eligible is False
    assert p.parse_flat(base | {"labor_capacity": "none"}).looks_eligible is True
    assert p.parse_flat(base | {"region_code": "532301001001", "monthly_per_capita_income": "620"}).looks_eligible is False
    assert [f for f, _ in p.parse_flat(base | {"category": "rich", "labor_capacity": "some"})] == [
        "category", "labor_capacity"]
    assert p.parse_json({**{k: base[k] for k in ("person_id", "occurred_on")}, "data": {"colour": 1}}) == [
        ("data.colour", "unknown field")]


def test_m1_m5_register_moves():
    d = SimpleNamespace(program="dibao", outcome="approved", covered_person_ids=["A", "B"], applicant_person_id="A",
                        effective_from=date(2026, 9, 1), reasons=[])
    assert [(c.person_id, c.category, c.action) for c in decision_changes(d)] == [
        ("A", "dibao", "enter"), ("B", "dibao", "enter"), ("A", "marginal", "leave"), ("B", "marginal", "leave")]
    denied = SimpleNamespace(**vars(d) | {"outcome": "denied", "covered_person_ids": []})
    assert decision_changes(denied) == []
    with_pci = SimpleNamespace(**vars(denied) | {"per_capita_income": Decimal("900"), "standard": Decimal("650")})
    assert [(c.category, c.action) for c in decision_changes(with_pci)] == [("marginal", "enter")]  # 900 < 975
    far = SimpleNamespace(**vars(denied) | {"per_capita_income": Decimal("1000"), "standard": Decimal("650")})
    assert decision_changes(far) == []
    tagged = SimpleNamespace(**vars(denied) | {"reasons": ["M5 边缘"]})
    assert [c.category for c in decision_changes(tagged)] == ["marginal"]
    linshi = SimpleNamespace(**vars(d) | {"program": "linshi"})
    assert {c.category for c in decision_changes(linshi)} == {"sudden_hardship"}
    stop = SimpleNamespace(program="tekun", change="stop", covered_person_ids=["C"], applicant_person_id="C",
                           effective_from=date(2026, 10, 1), reason="迁出")
    assert [(c.category, c.action) for c in benefit_changes(stop)] == [("tekun", "leave")]


async def _chunks(data: bytes, size: int):
    for i in range(0, len(data), size):
        yield data[i:i + size]


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
async def test_m2_streams_keep_records_whole_across_chunks(size):
    data = 'type,reference\r\ndeath,"a\nb, ""c"""\r\n\r\ndeath,x\r\n'.encode()
    got = [(n, v) async for _, rows in csv_rows(_chunks(b"\xef\xbb\xbf" + data, size), max_line_bytes=1000)
           for n, v in rows]
    assert got == [(2, ["death", 'a\nb, "c"']), (4, ["death", "x"])]
    lines = b'{"a": 1}\n\nnot json\n{"b": 2}'
    got = [(n, v) async for rows in jsonl_rows(_chunks(lines, size), max_line_bytes=1000) for n, v in rows]
    assert got[0] == (1, {"a": 1}) and got[1][0] == 3 and isinstance(got[1][1], str) and got[2] == (4, {"b": 2})
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\n"
            b"Content-Disposition: form-data; name=\"file\"; filename=\"m.csv\"\r\n\r\n" + data + b"\r\n--XyZ--\r\n")
    part = MultipartFile(_chunks(body, size), b"XyZ")
    assert b"".join([c async for c in part]) == data and part.filename == "m.csv" and part.fields == {"note": "hello"}


def test_m2_exported_json_schemas_match_the_code():
    """services/monitoring/schemas/partner-events/*.json = the pydantic models (regenerate with
    ``python -m services.monitoring.schema_export``)."""
    expected = schemas()
    assert sorted(p.name for p in OUT.glob("*.json")) == sorted(expected)
    for name, schema in expected.items():
        assert (OUT / name).read_text(encoding="utf-8") == render(schema), f"{name} is stale"
        assert json.loads((OUT / name).read_text(encoding="utf-8"))["$id"].endswith(name)
