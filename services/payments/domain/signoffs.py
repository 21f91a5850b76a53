"""Who must sign before money moves (pure).

- P2: a township payout needs 事务办主任, 分管事务办领导 and 分管财政领导 — three distinct people.
- P1: a county pre-allocation (联合行文预拨) needs county civil affairs and county finance.
- L4, county-level temporary assistance (above the township limit): our choice is the same
  pair as P1 — 县民政 decides, 县财政 pays — two distinct people.
Order never matters; one person signs once, in one role.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TOWNSHIP_PAYOUT_ROLES = ("township_office_director", "township_office_leader", "township_finance_leader")
COUNTY_ROLES = ("county_civil_affairs", "county_finance")


def required_roles(approval_level: str) -> tuple[str, ...]:
    return TOWNSHIP_PAYOUT_ROLES if approval_level == "township" else COUNTY_ROLES


@dataclass(frozen=True, slots=True)
class Signoff:
    role: str
    signer_sub: str


class SignoffRefused(Exception):
    status = 409

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def check(required: Sequence[str], existing: Sequence[Signoff], *, role: str, signer_sub: str) -> None:
    """Raises :class:`SignoffRefused` (403 wrong role, 409 conflict) unless this sign-off may be added."""
    if role not in required:
        raise SignoffRefused(f"role '{role}' does not sign here; needed: {', '.join(required)}", status=403)
    if is_complete(required, existing):
        raise SignoffRefused("all sign-offs are already given")
    for s in existing:
        if s.signer_sub == signer_sub:
            raise SignoffRefused(f"this person already signed (as {s.role}); three distinct people are needed"
                                 if len(required) == 3 else
                                 f"this person already signed (as {s.role}); distinct people are needed")
        if s.role == role:
            raise SignoffRefused(f"role '{role}' has already signed")


def is_complete(required: Sequence[str], signoffs: Sequence[Signoff]) -> bool:
    roles = {s.role for s in signoffs}
    people = {s.signer_sub for s in signoffs}
    return set(required) <= roles and len(people) >= len(required)


def missing(required: Sequence[str], signoffs: Sequence[Signoff]) -> list[str]:
    have = {s.role for s in signoffs}
    return [r for r in required if r not in have]
