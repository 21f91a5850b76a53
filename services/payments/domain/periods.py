"""Months of a monthly benefit (P5, D5), pure.

A benefit period is a half-open interval of days [start, end). A month is paid when the period
covers any of its days, so:

- a benefit starting on ``effective_from`` is paid from the month containing that day;
- a stop effective on day d (or a death on day d − 1) ends the period at d: the last paid
  month is the one containing d − 1 day;
- a gradual exit (渐退) of N months from ``effective_from`` ends at ``effective_from`` + N
  months; with a 1st-of-month start that is exactly N payments. (``benefit.changed`` carries
  ``exit_until`` as the last day of the period: the month containing it is the last paid.)

A payment for a month that starts after the date of death, or a one-off paid after it, is
recovered (P5, M6: 防止"死亡保").
"""
from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(text: str) -> date:
    """``"2026-11"`` → 2026-11-01; ValueError otherwise."""
    m = _MONTH.match(text or "")
    if not m:
        raise ValueError("must be a month as YYYY-MM")
    year = int(m.group(1))
    if year < 2000 or year > 2100:
        raise ValueError("year out of range")
    return date(year, int(m.group(2)), 1)


def format_month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def month_of(d: date) -> date:
    return d.replace(day=1)


def add_months(d: date, n: int) -> date:
    total = d.year * 12 + (d.month - 1) + n
    year, month = divmod(total, 12)
    day = min(d.day, calendar.monthrange(year, month + 1)[1])
    return date(year, month + 1, day)


def last_month_before(end_exclusive: date) -> date:
    """The last month with a day before ``end_exclusive``."""
    return month_of(end_exclusive - timedelta(days=1))


def gradual_exit_last_month(effective_from: date, months: int) -> date:
    """D5: paid for ``months`` months from ``effective_from``."""
    if months < 1:
        raise ValueError("exit months must be at least 1")
    return last_month_before(add_months(effective_from, months))


def stop_last_month(effective_from: date) -> date:
    return last_month_before(effective_from)


def months_between(first: date, last: date) -> list[date]:
    out, m = [], month_of(first)
    while m <= last:
        out.append(m)
        m = add_months(m, 1)
    return out


def paid_after_death(*, month: date | None, paid_on: date | None, date_of_death: date) -> bool:
    """True for a monthly payment whose month starts after the death, or a one-off paid after it."""
    if month is not None:
        return month > date_of_death
    return paid_on is not None and paid_on > date_of_death
