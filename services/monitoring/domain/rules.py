"""M3–M6 warning rules as data (``data/warning_rules.json``): levels, deadlines per level in
working days of the official calendar, the categories that count as covered or watched, and
the results a verification may close a warning with. Pure: no I/O besides reading the data."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.calendar import Deadline, WorkingCalendar

_DATA = Path(__file__).resolve().parent.parent / "data" / "warning_rules.json"

# The partner event type each risk rule fires on (M3 因病/因失业/因残/因学, M6 deaths).
TRIGGER_RULES = {"death": "death", "medical_expense": "illness", "unemployment": "unemployment",
                 "disability_certified": "disability", "school_enrollment": "schooling"}


@dataclass(frozen=True)
class Rule:
    key: str
    rule: str        # the POLICY.md code: M3, M4, M6
    label: str
    level: int
    source: str
    extra: dict[str, Any]


@dataclass(frozen=True)
class WarningRules:
    version: str
    deadline_working_days: dict[int, int]
    covered: tuple[str, ...]
    watched: tuple[str, ...]
    rules: dict[str, Rule]
    close_results: dict[str, str]

    def rule(self, key: str) -> Rule:
        return self.rules[key]

    def days(self, level: int) -> int:
        return self.deadline_working_days[level]

    def due(self, raised_on: date, level: int, calendar: WorkingCalendar) -> Deadline:
        """限时核查: the day the on-the-ground check is due, ``days(level)`` working days after raising."""
        return calendar.add_working_days(raised_on, self.days(level))

    def due_by_level(self, raised_on: date, calendar: WorkingCalendar) -> dict[int, Deadline]:
        return {lvl: self.due(raised_on, lvl, calendar) for lvl in sorted(self.deadline_working_days)}

    # -- grading, in Python for one event; comparison.py compiles the same data to SQL -----------
    def illness_level(self, amount: Decimal, threshold: Decimal) -> int | None:
        if amount < threshold:
            return None
        r = self.rules["illness"]
        multiple = Decimal(str(r.extra.get("level_1_at_threshold_multiple", "0")))
        return 1 if multiple and amount >= threshold * multiple else r.level

    def disability_level(self, grade: int) -> int:
        r = self.rules["disability"]
        return 1 if grade in r.extra.get("level_1_grades", []) else r.level


def _parse(raw: dict[str, Any]) -> WarningRules:
    days = {int(k): int(v) for k, v in raw["deadline_working_days"].items()}
    if sorted(days) != [1, 2, 3] or any(v < 1 for v in days.values()):
        raise ValueError("deadline_working_days needs levels 1, 2 and 3 with at least one day each")
    rules = {}
    for key, r in raw["rules"].items():
        lvl = int(r["level"])
        if lvl not in days:
            raise ValueError(f"rule {key}: level {lvl} is not 1–3")
        rules[key] = Rule(key=key, rule=r["rule"], label=r["label"], level=lvl, source=r.get("source", ""),
                          extra={k: v for k, v in r.items() if k not in ("rule", "label", "level", "source")})
    missing = {*TRIGGER_RULES.values(), "coverage_gap"} - set(rules)
    if missing:
        raise ValueError(f"warning rules missing: {sorted(missing)}")
    return WarningRules(version=str(raw.get("version", "")), deadline_working_days=days,
                        covered=tuple(raw["covered_categories"]), watched=tuple(raw["watch_categories"]),
                        rules=rules, close_results=dict(raw["close_results"]))


@lru_cache(maxsize=4)
def load_rules(path: Path = _DATA) -> WarningRules:
    return _parse(json.loads(Path(path).read_text(encoding="utf-8")))
