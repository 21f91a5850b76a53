"""Checks across fields that a shape check cannot make (pure; returns every problem at once).

Shape and identity-number check digits are checked by the request schema; this module adds
what needs several fields or data: the birth date inside the ID number, region codes that can
be dispatched, one applicant per household and nobody twice, each channel's own record (I1),
and document codes known to the checklist (I3)."""
from __future__ import annotations

from collections.abc import Container
from datetime import date, datetime
from typing import Any

from shared.auth import is_region_code

ROLE_CHANNELS: dict[str, set[str]] = {
    # Which door each role may file through (I1).
    "applicant": {"e_jiuzhu"},
    "hotline_operator": {"hotline_12345"},
    "village_coordinator": {"active_discovery"},
    "township_clerk": {"window", "active_discovery"},
    "county_civil_affairs": {"window", "active_discovery"},
}

_LEVEL_ORDER = ("province", "city", "county", "township", "village")


def region_problem(code: str | None, *, lowest_level: str = "township") -> str | None:
    """Why ``code`` cannot be used as a region at ``lowest_level`` or below; None when it can.

    12-digit 统计用区划代码: province(2) city(2) county(2) township(3) village(3); once a level
    is empty (zeros) every level below must be empty too."""
    if not is_region_code(code):
        return "must be a 12-digit administrative region code (行政区划代码)"
    assert code is not None
    parts = (code[2:4], code[4:6], code[6:9], code[9:12])
    empty_above = False
    depth = 0  # 0 province … 4 village
    for i, part in enumerate(parts, start=1):
        if int(part) == 0:
            empty_above = True
        elif empty_above:
            return "is not a well-formed region code (a level is set below an empty one)"
        else:
            depth = i
    if depth < _LEVEL_ORDER.index(lowest_level):
        return f"must be a {lowest_level} or a region below it (got a {_LEVEL_ORDER[depth]})"
    return None


def application_problems(app: Any, *, today: date, now: datetime | None = None,
                         known_documents: Container[str] | None = None) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if (p := region_problem(app.region_code)) is not None:
        problems.append(("region_code", p))
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
        elif _born(m.person_id) != m.birth_date:
            problems.append((f"household.members.{i}.birth_date",
                             "birth date does not match the one in the ID number"))
        if m.disability_kind is not None and m.disability_grade is None:
            problems.append((f"household.members.{i}.disability_grade",
                             "a disability kind needs its grade (1-4) from the disability certificate"))
    if app.channel == "hotline_12345" and not app.channel_ref:
        problems.append(("channel_ref", "a 12345 application carries its work-order number"))
    if app.channel == "active_discovery":
        if app.discovery is None:
            problems.append(("discovery", "an actively discovered case records who found the person, where and when"))
        elif now is not None and app.discovery.found_at > now:
            problems.append(("discovery.found_at", "the discovery time is in the future"))
    elif app.discovery is not None:
        problems.append(("discovery", "only an actively discovered case (channel active_discovery) has a discovery record"))
    if app.program == "linshi":
        if app.hardship is None:
            problems.append(("hardship", "临时救助 needs the hardship: kind and months (L2, L3)"))
        elif app.hardship.kind == "expense" and app.hardship.expense_amount is None:
            problems.append(("hardship.expense_amount", "支出型 hardship needs the expense amount (L2)"))
    if app.hardship is not None:
        if app.hardship.occurred_on and app.hardship.occurred_on > today:
            problems.append(("hardship.occurred_on", "the hardship date is in the future"))
        if app.hardship.place_region_code is not None and (
                p := region_problem(app.hardship.place_region_code)) is not None:
            problems.append(("hardship.place_region_code", p))
    if known_documents is not None:
        for i, doc in enumerate(app.documents):
            if doc not in known_documents:
                problems.append((f"documents.{i}", f"unknown document code {doc[:40]!r}"))
    return problems


def _born(person_id: str) -> date | None:
    """Birth date in digits 7–14 of a number the schema has already validated (GB 11643)."""
    try:
        return date(int(person_id[6:10]), int(person_id[10:12]), int(person_id[12:14]))
    except ValueError:
        return None


def applicant_person_id(app: Any) -> str:
    for m in app.household.members:
        if m.relation == "applicant":
            return str(m.person_id)
    return str(app.household.members[0].person_id)
