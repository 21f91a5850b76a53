"""M2 monthly comparison files: one row → one typed partner record, or every problem of that
row as (field, message). Pure and fast (hundreds of thousands of rows per file): the identity
number check digit is computed inline, falling back to ``shared.idnumbers`` for the message.

CSV: a header row names the columns; JSONL: one object per line shaped like the
``POST /v1/partner-events`` body (``type``, ``person_id``, ``occurred_on``, ``reference``, ``data``).
"""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

from shared.errors import InvalidInput
from shared.events.monitoring import PARTNER_EVENT_TYPES
from shared.idnumbers import InvalidIdNumber, validate_id_number
from shared.money import parse_money

from services.monitoring.domain.reference import ReferenceLines

FILE_KINDS = (*PARTNER_EVENT_TYPES, "mixed")

# data fields per type: (required, optional); optional ones that monitoring does not use are accepted
# and not stored (the partner keeps them).
DATA_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "death": (frozenset(), frozenset({"record_source", "certificate_no", "place_region_code"})),
    "medical_expense": (frozenset({"amount"}), frozenset({"hospital", "diagnosis"})),
    "unemployment": (frozenset(), frozenset({"receives_unemployment_insurance", "previous_employer"})),
    "disability_certified": (frozenset({"grade"}), frozenset({"kind", "certificate_no"})),
    "school_enrollment": (frozenset({"stage"}), frozenset({"school"})),
    "poverty_monitoring": (frozenset({"category", "region_code"}),
                           frozenset({"monthly_per_capita_income", "labor_capacity", "household_size"})),
}
BASE_FIELDS = frozenset({"type", "person_id", "occurred_on", "reference"})
ALL_CSV_COLUMNS = BASE_FIELDS | frozenset().union(*(r | o for r, o in DATA_FIELDS.values()))

_STAGES = frozenset({"preschool", "primary", "junior_secondary", "senior_secondary", "vocational", "higher"})
_POVERTY_CATEGORIES = frozenset({"unstable_post_poverty", "at_risk_of_poverty"})
_LABOR = frozenset({"full", "partial", "none"})
_REGION = re.compile(r"^\d{12}$")
_CHECK = "10X98765432"
_MONEY_FAST = re.compile(r"^[0-9]{1,13}(?:\.[0-9]{1,2})?$")
_DATE_FAST = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _check_digit_ok(v: str) -> bool:
    """GB 11643: the weights are 2^(17-i) mod 11, and 13 ≡ 2 (mod 11), so the weighted sum is
    2 × (the 17 digits read in base 13) mod 11 — one C-level int() instead of 17 multiplications."""
    body = v[:17]
    return body.isdigit() and body.isascii() and _CHECK[(2 * int(body, 13)) % 11] == v[17]


class Record(NamedTuple):
    type: str
    person_id: str
    occurred_on: date
    amount: Decimal | str | None  # a checked decimal string on the fast path
    grade: int | None
    category: str | None
    region_code: str | None
    monthly_per_capita_income: Decimal | None
    labor_capacity: str | None
    looks_eligible: bool
    reference: str | None


def check_id(value: Any, today: date) -> tuple[str | None, str | None]:
    """(normalized id, None) or (None, message)."""
    if isinstance(value, str) and len(value) == 18:
        if _check_digit_ok(value):
            try:
                born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
            except ValueError:
                born = None
            if born is not None and date(1900, 1, 1) <= born <= today:
                return value, None
    if not isinstance(value, str):
        return None, "must be a string"
    try:
        return validate_id_number(value, today=today), None
    except InvalidIdNumber as exc:
        return None, str(exc)


def _money(value: Any, field: str) -> tuple[Decimal | None, str | None]:
    try:
        return parse_money(value, field=field), None
    except InvalidInput as exc:
        return None, exc.errors[0]["message"] if exc.errors else str(exc)


class RowParser:
    """Validates rows of one file. ``kind`` is a partner event type, or ``mixed`` (each row has ``type``)."""

    def __init__(self, kind: str, *, today: date, reference: ReferenceLines,
                 allowed_types: frozenset[str] | None = None) -> None:
        self.kind = kind
        self.today = today
        self.reference = reference
        self.allowed_types = allowed_types
        self._births: dict[str, bool] = {}
        self._dates: dict[str, date | None] = {}
        self._index: dict[str, int] = {}

    # -- the fast path: the common well-formed CSV row, no dict, cached dates ------------------
    def use_header(self, columns: list[str]) -> None:
        self._index = ix = {c: i for i, c in enumerate(columns)}
        self._i_type = ix.get("type")
        self._i_pid = ix["person_id"]
        self._i_on = ix["occurred_on"]
        self._i_ref = ix.get("reference")
        self._i_amount = ix.get("amount")
        self._fast_types = frozenset(t for t in ("death", "medical_expense")
                                     if self.allowed_types is None or t in self.allowed_types)

    def _born_ok(self, v: str) -> bool:
        key = v[6:14]
        ok = self._births.get(key)
        if ok is None:
            try:
                born = date(int(key[0:4]), int(key[4:6]), int(key[6:8]))
                ok = date(1900, 1, 1) <= born <= self.today
            except ValueError:
                ok = False
            self._births[key] = ok
        return ok

    def _day(self, v: str) -> date | None:
        try:
            return self._dates[v]
        except KeyError:
            d = None
            if _DATE_FAST.match(v):
                try:
                    d = date.fromisoformat(v)
                except ValueError:
                    d = None
                if d is not None and d > self.today:
                    d = None
            if len(self._dates) < 100_000:
                self._dates[v] = d
            return d

    def parse_csv(self, values: list[str]) -> Record | list[tuple[str, str]]:
        """A CSV row (values in header order); well-formed death and medical rows take a fast path."""
        if self._i_type is not None:
            typ = values[self._i_type]
            if self.kind != "mixed" and typ not in ("", self.kind):
                return self.parse_flat(dict(zip(self._index, values)))
            typ = typ or self.kind
        else:
            typ = self.kind
        if typ in self._fast_types:
            pid = values[self._i_pid]
            on = self._day(values[self._i_on])
            if on is not None and len(pid) == 18 and _check_digit_ok(pid) and self._born_ok(pid):
                ref = values[self._i_ref] if self._i_ref is not None else None
                if ref is None or len(ref) <= 64:
                    if typ == "death":
                        return Record("death", pid, on, None, None, None, None, None, None, False, ref or None)
                    amount = values[self._i_amount] if self._i_amount is not None else ""
                    if _MONEY_FAST.match(amount):
                        return Record("medical_expense", pid, on, amount, None, None, None, None, None, False,
                                      ref or None)
        return self.parse_flat(dict(zip(self._index, values)))

    def header_problems(self, columns: list[str]) -> list[tuple[str, str]]:
        problems = []
        seen = set()
        for c in columns:
            if c in seen:
                problems.append((c, "column appears twice"))
            seen.add(c)
            if c not in ALL_CSV_COLUMNS:
                problems.append((c, f"unknown column; allowed: {', '.join(sorted(ALL_CSV_COLUMNS))}"))
        required = {"person_id", "occurred_on"} | ({"type"} if self.kind == "mixed" else set(DATA_FIELDS[self.kind][0]))
        for c in sorted(required - seen):
            problems.append((c, "required column is missing"))
        return problems

    def parse_flat(self, f: dict[str, Any]) -> Record | list[tuple[str, str]]:
        """``f``: the row's fields, data fields at top level, absent or empty meaning missing."""
        problems: list[tuple[str, str]] = []
        typ = self.kind
        if typ == "mixed":
            typ = f.get("type") or ""
            if typ not in DATA_FIELDS:
                return [("type", f"must be one of {', '.join(PARTNER_EVENT_TYPES)}")]
        elif f.get("type") not in (None, "", typ):
            return [("type", f"this file's kind is {typ}")]
        if self.allowed_types is not None and typ not in self.allowed_types:
            return [("type", f"this partner may not report {typ}")]
        person_id, msg = check_id(f.get("person_id") or "", self.today)
        if msg:
            problems.append(("person_id", msg))
        occurred = None
        raw_on = f.get("occurred_on")
        if not raw_on:
            problems.append(("occurred_on", "is required"))
        else:
            try:
                if not isinstance(raw_on, str) or len(raw_on) != 10:
                    raise ValueError
                occurred = date.fromisoformat(raw_on)
            except ValueError:
                problems.append(("occurred_on", "must be a date YYYY-MM-DD"))
            else:
                if occurred > self.today:
                    problems.append(("occurred_on", "is in the future"))
        required, optional = DATA_FIELDS[typ]
        for field in required:
            if f.get(field) in (None, ""):
                problems.append((field, f"is required for {typ}"))
        amount = pci = None
        grade = None
        category = region = labor = None
        if typ == "medical_expense" and f.get("amount") not in (None, ""):
            amount, msg = _money(f["amount"], "amount")
            if msg:
                problems.append(("amount", msg))
        elif typ == "disability_certified" and f.get("grade") not in (None, ""):
            g = f["grade"]
            if isinstance(g, str) and g.isdigit():
                g = int(g)
            if g not in (1, 2, 3, 4) or isinstance(g, bool):
                problems.append(("grade", "must be 1, 2, 3 or 4"))
            else:
                grade = g
        elif typ == "school_enrollment" and f.get("stage") not in (None, "") and f["stage"] not in _STAGES:
            problems.append(("stage", f"must be one of {', '.join(sorted(_STAGES))}"))
        elif typ == "poverty_monitoring":
            category = f.get("category") or None
            if category is not None and category not in _POVERTY_CATEGORIES:
                problems.append(("category", "must be unstable_post_poverty or at_risk_of_poverty"))
            region = f.get("region_code") or None
            if region is not None and not (isinstance(region, str) and _REGION.match(region)):
                problems.append(("region_code", "must be a 12-digit region code"))
            if f.get("monthly_per_capita_income") not in (None, ""):
                pci, msg = _money(f["monthly_per_capita_income"], "monthly_per_capita_income")
                if msg:
                    problems.append(("monthly_per_capita_income", msg))
            labor = f.get("labor_capacity") or None
            if labor is not None and labor not in _LABOR:
                problems.append(("labor_capacity", "must be full, partial or none"))
        ref = f.get("reference")
        if ref is not None and (not isinstance(ref, str) or len(ref) > 64):
            problems.append(("reference", "must be text of at most 64 characters"))
        if problems:
            return problems
        looks = typ == "poverty_monitoring" and self.reference.looks_eligible(region, occurred, pci, labor)  # type: ignore[arg-type]
        return Record(typ, person_id, occurred, amount, grade, category, region, pci, labor, looks,  # type: ignore[arg-type]
                      ref or None)

    def parse_json(self, obj: Any) -> Record | list[tuple[str, str]]:
        if not isinstance(obj, dict):
            return [("row", "must be a JSON object")]
        unknown = set(obj) - BASE_FIELDS - {"data"}
        if unknown:
            return [(sorted(unknown)[0], "unknown field")]
        data = obj.get("data") or {}
        if not isinstance(data, dict):
            return [("data", "must be an object")]
        typ = obj.get("type") if self.kind == "mixed" else self.kind
        if typ in DATA_FIELDS:
            required, optional = DATA_FIELDS[typ]
            extra = set(data) - required - optional
            if extra:
                return [(f"data.{sorted(extra)[0]}", "unknown field")]
        flat = {k: v for k, v in obj.items() if k != "data"}
        flat.update(data)
        result = self.parse_flat(flat)
        if isinstance(result, list):
            return [((f"data.{f}" if f in data else f), m) for f, m in result]
        return result
