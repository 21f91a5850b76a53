"""Who may see a full identity number; everybody else gets it masked."""
from __future__ import annotations

from shared.idnumbers import mask_id_number

# Roles that verify identity on the case itself (审核/审批/付款). Hotline operators, village
# coordinators, monitoring operators, partner systems and applicants see masked numbers.
FULL_ID_ROLES = frozenset({
    "township_clerk", "township_office_director", "township_office_leader",
    "township_finance_leader", "county_civil_affairs", "county_finance",
})


def present_id(value: str, role: str) -> str:
    return value if role in FULL_ID_ROLES else mask_id_number(value)
