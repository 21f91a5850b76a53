"""Recording one sign-off (P1 joint allocation, P2 three township roles, L4 county level): the
rule check, the row and its audit entry in the caller's transaction."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shared.auth import Principal
from shared.errors import Conflict, Forbidden

from services.payments import audit
from services.payments.domain import signoffs as so
from services.payments.models import signoffs


async def signoffs_of(s: Any, subject_type: str, subject_id: str) -> list[Any]:
    return list((await s.execute(sa.select(signoffs).where(
        signoffs.c.subject_type == subject_type, signoffs.c.subject_id == subject_id)
        .order_by(signoffs.c.signed_at))).mappings().all())


async def sign(s: Any, principal: Principal, *, subject_type: str, subject_id: str, required: Any,
               comment: str | None, action: str, now: datetime) -> bool:
    """Adds the caller's sign-off (403 wrong role, 409 same person twice or a role taken);
    True when it completes the set."""
    existing = await signoffs_of(s, subject_type, subject_id)
    done = [so.Signoff(r["role"], r["signer_sub"]) for r in existing]
    try:
        so.check(required, done, role=principal.role, signer_sub=principal.sub)
    except so.SignoffRefused as exc:
        raise (Forbidden if exc.status == 403 else Conflict)(str(exc)) from None
    await s.execute(signoffs.insert().values(
        subject_type=subject_type, subject_id=subject_id, role=principal.role, signer_sub=principal.sub,
        signer_name=principal.name[:100], signed_at=now, comment=comment))
    await audit.record(s, principal, action, subject_type, subject_id, {"role": principal.role, "comment": comment})
    return so.is_complete(required, done + [so.Signoff(principal.role, principal.sub)])
