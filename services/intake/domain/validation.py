"""Checks across fields that a shape check cannot make (pure; returns every problem at once)."""
from __future__ import annotations

from datetime import date
from typing import Any

from shared.idnumbers import birth_date_of

ROLE_CHANNELS: dict[str, set[str]] = {
    # Which door each role may file through (I1).
    "applicant": {"e_jiuzhu"},
    "hotline_operator": {"hotline_12345"},
    "village_coordinator": {"active_discovery"},
    "township_clerk": {"window", "active_discovery"},
    "county_civil_affairs": {"window", "active_discovery"},
}


def application_problems(app: Any, *, today: date) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    members = app.household.members
    applicants = [i for i, m in enumerate(members) if m.relation == "applicant"]
    if len(applicants) != 1:
        problems.append(("household.members", f"exactly one member must have relation 'applicant' (found {len(applicants)})"))
    seen: dict[str, int] = {}
    for i, m in enumerate(members):
        if m.person_id in seen:
            problems.append((f"household.members.{i}.person_id",
                             f"the same person is already member {seen[m.person_id]}"))
        seen.setdefault(m.person_id, i)
        if m.birth_date > today:
            problems.append((f"household.members.{i}.birth_date", "birth date is in the future"))
        elif birth_date_of(m.person_id) != m.birth_date:
            problems.append((f"household.members.{i}.birth_date",
                             "birth date does not match the one in the ID number"))
    if app.channel == "hotline_12345" and not app.channel_ref:
        problems.append(("channel_ref", "a 12345 application carries its work-order number"))
    if app.channel == "active_discovery" and app.discovery is None:
        problems.append(("discovery", "an actively discovered case records who found the person, where and when"))
    if app.program == "linshi":
        if app.hardship is None:
            problems.append(("hardship", "临时救助 needs the hardship: kind and months (L2, L3)"))
        elif app.hardship.kind == "expense" and app.hardship.expense_amount is None:
            problems.append(("hardship.expense_amount", "支出型 hardship needs the expense amount (L2)"))
    if app.hardship is not None and app.hardship.occurred_on and app.hardship.occurred_on > today:
        problems.append(("hardship.occurred_on", "the hardship date is in the future"))
    return problems


def applicant_person_id(app: Any) -> str:
    for m in app.household.members:
        if m.relation == "applicant":
            return str(m.person_id)
    return str(app.household.members[0].person_id)
