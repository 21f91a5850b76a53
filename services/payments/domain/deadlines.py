"""P3: ≤ 5 working days (official calendar) from acceptance to money paid, pure.

``pay_by`` is the 5th working day after the day of acceptance (the day itself never counts).
On ``today`` a clock is:

- ``breached`` when today is after ``pay_by`` and nothing is paid;
- ``at_risk`` when at most one working day is left (today is ``pay_by`` or the working day
  before it);
- ``ok`` otherwise.
"""
from __future__ import annotations

from datetime import date

from shared.calendar import WorkingCalendar

P3_WORKING_DAYS = 5
STATES = ("ok", "at_risk", "breached")


def working_days_left(calendar: WorkingCalendar, today: date, pay_by: date) -> int:
    """Working days in (today, pay_by], at least 0; a year without calendar data counts Monday–Friday."""
    return max(0, calendar.working_days_between(today, pay_by, strict=False))


def classify(today: date, pay_by: date, days_left: int) -> str:
    if today > pay_by:
        return "breached"
    if days_left <= 1:
        return "at_risk"
    return "ok"


def worse(old: str, new: str) -> bool:
    return STATES.index(new) > STATES.index(old)


def within_limit(paid_on: date, pay_by: date) -> bool:
    return paid_on <= pay_by
