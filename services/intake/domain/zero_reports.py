"""零报告 (I4): every village and township reports each month, even when it found nobody."""
from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def period_problem(period: str, *, today: date) -> str | None:
    m = _PERIOD.match(period)
    if m is None:
        return "must be a month as YYYY-MM"
    if (int(m.group(1)), int(m.group(2))) > (today.year, today.month):
        return "is a month that has not started yet"
    return None


def current_period(today: date) -> str:
    return f"{today.year:04d}-{today.month:02d}"


def missing_regions(expected: Iterable[str], filed: Iterable[str]) -> list[str]:
    have = set(filed)
    return sorted(code for code in expected if code not in have)
