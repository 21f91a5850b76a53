"""Payments' use of the kernel audit trail (shared/audit.py, hash-chained; read it at
GET /v1/audit and GET /v1/audit/verify). Every staff action is recorded in the same transaction
as the change it describes: who (sub, name, role), what, on which entity, when."""
from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared import audit as kernel_audit
from shared.auth import Principal

from services.payments.storage import dialect, serialize

_SQLITE_WRITE_LOCK = 0


async def record(session: AsyncSession, principal: Principal, action: str, entity_type: str, entity_id: str,
                 detail: dict[str, Any] | None = None) -> int:
    if dialect(session) == "sqlite":
        # the kernel reads the chain's tail before appending: hold the write lock first
        await serialize(session, _SQLITE_WRITE_LOCK)
    return await kernel_audit.record(session, actor=f"{principal.sub} ({principal.name})"[:120],
                                     actor_role=principal.role, action=action, entity_type=entity_type,
                                     entity_id=entity_id, detail=detail, actor_region=principal.region)
