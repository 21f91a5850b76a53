"""分办 (I2) and time limits (I3, P3): who handles an application, by when."""
from __future__ import annotations

import json
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from shared.auth import township_of
from shared.calendar import Deadline, WorkingCalendar

_LIMITS = Path(__file__).resolve().parent.parent / "data" / "time_limits.json"


def handling_township(program: str, region_code: str, hardship_place: str | None) -> str:
    """低保/特困 go to the township of residence; 临时救助 to the township where the hardship
    happened — no hukou or residence restriction (L1)."""
    if program == "linshi" and hardship_place:
        return township_of(hardship_place)
    return township_of(region_code)


@lru_cache(maxsize=1)
def time_limits() -> dict[str, int]:
    return dict(json.loads(_LIMITS.read_text(encoding="utf-8"))["acceptance_to_payment"])


def acceptance_deadline(program: str, received_at: datetime, calendar: WorkingCalendar) -> Deadline:
    return calendar.add_working_days(received_at, time_limits()[program])


def days_overdue(due_by: date, today: date) -> int:
    return (today - due_by).days
