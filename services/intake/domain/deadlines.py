"""限时办理 (I3, P3): the clock of each step in working days on the official calendar.

Pure rules over a :class:`~shared.calendar.WorkingCalendar`: which limit applies to a step,
the step's effective deadline, and whether a clock is on time, at risk or overdue.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from shared.calendar import WorkingDays

_DATA = Path(__file__).resolve().parent.parent / "data" / "time_limits.json"

# Statuses whose clock runs (an application in any other status has no deadline).
CLOCKED_STATUSES = ("received", "accepted", "under_review", "decided")
STATES = ("on_time", "at_risk", "overdue")


@dataclass(frozen=True)
class TimeLimits:
    acceptance_to_payment: dict[str, int]
    steps: dict[str, dict[str, int]]
    hotline_answer: dict[str, int]
    at_risk_working_days_left: int


@lru_cache(maxsize=4)
def load_time_limits(path: Path = _DATA) -> TimeLimits:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return TimeLimits(acceptance_to_payment=dict(raw["acceptance_to_payment"]),
                      steps={k: dict(v) for k, v in raw["steps"].items()},
                      hotline_answer=dict(raw["hotline_answer"]),
                      at_risk_working_days_left=int(raw["at_risk_working_days_left"]))


@dataclass(frozen=True)
class Clock:
    """A step's deadline and the day from which it is at risk (≤ N working days left, but a
    step shorter than that is at risk only on its last day)."""

    due: date
    provisional: bool
    at_risk_on: date


def clock_for(start: date | datetime, working_days: int, days: WorkingDays, limits: TimeLimits) -> Clock:
    d = days.add(start, working_days)
    n = limits.at_risk_working_days_left
    at_risk_on = days.add(start, working_days - n).due if working_days > n else d.due
    return Clock(d.due, d.provisional, at_risk_on)


def earlier(a: Clock, b: Clock | None) -> Clock:
    if b is None or a.due < b.due:
        return a
    if b.due < a.due:
        return b
    return Clock(a.due, a.provisional or b.provisional, min(a.at_risk_on, b.at_risk_on))


def overall_deadline(program: str, accepted_at: datetime, days: WorkingDays, limits: TimeLimits) -> Clock:
    """From acceptance to money paid (P3: linshi 5 working days)."""
    return clock_for(accepted_at, limits.acceptance_to_payment[program], days, limits)


def step_deadline(status: str, program: str, started_at: datetime, overall: Clock | None,
                  days: WorkingDays, limits: TimeLimits) -> Clock | None:
    """The deadline of the step an application has just entered; None when no clock runs.
    Once accepted, no step may run past the acceptance-to-payment deadline."""
    per_program = limits.steps.get(status)
    if per_program is None or program not in per_program:
        return None
    own = clock_for(started_at, per_program[program], days, limits)
    return own if status == "received" else earlier(own, overall)


def clock_state(due: date | None, at_risk_on: date | None, today: date) -> str:
    if due is None:
        return "on_time"
    if due < today:
        return "overdue"
    if at_risk_on is not None and at_risk_on <= today:
        return "at_risk"
    return "on_time"
