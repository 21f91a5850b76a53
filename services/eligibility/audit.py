"""Eligibility's use of the kernel's tamper-evident audit trail (shared/audit.py): who (sub,
name, role) did what, when and why — publications, facts, decisions, re-evaluation jobs. The
entry is appended in the use case's own transaction; ``GET /v1/audit/verify`` (kernel) checks
the hash chain."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared import audit as kernel_audit
from shared.writes import RowSets, Writes


@dataclass(frozen=True)
class Actor:
    sub: str
    name: str
    role: str


SYSTEM = Actor("system:eligibility", "eligibility service", "system")


async def append(session: AsyncSession, actor: Actor, action: str, entity: str, entity_id: str,
                 detail: dict[str, Any], *, at: datetime | None = None, writes: Writes | RowSets | None = None) -> int:
    return await kernel_audit.record(session, actor=actor.sub[:120], actor_role=actor.role[:40], action=action,
                                     entity_type=entity, entity_id=entity_id,
                                     detail={**detail, "actor_name": actor.name}, at=at, writes=writes)
