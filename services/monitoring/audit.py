"""Monitoring's entries in the kernel's tamper-evident audit trail (shared/audit.py, POLICY §7):
who closed or escalated a warning and with what result, visits to 特困 persons, supply-mode
changes, processed comparison files. Appended in the use case's own transaction."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared import audit as kernel_audit
from shared.auth import Principal


async def record(session: AsyncSession, actor: Principal | str, action: str, entity_type: str, entity_id: str,
                 detail: dict[str, Any] | None = None) -> int:
    if session.bind.dialect.name == "sqlite":
        # the kernel reads the chain's tail before appending: take SQLite's write lock first
        await session.execute(sa.text("UPDATE partner_nonces SET nonce = nonce WHERE 1 = 0"))
    if isinstance(actor, Principal):
        who, role = f"{actor.sub} ({actor.name})"[:120], actor.role
    else:
        who, role = actor[:120], "system"
    return await kernel_audit.record(session, actor=who, actor_role=role, action=action, entity_type=entity_type,
                                     entity_id=str(entity_id), detail=detail or {},
                                     actor_region=actor.region if isinstance(actor, Principal) else None)
