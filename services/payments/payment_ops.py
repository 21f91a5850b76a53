"""Moving a payment's money inside the ledger, within the caller's transaction.

- earmark: source (reserve or county budget) → the person's payable. If the source lacks the
  money the payment waits in ``awaiting_funds`` (visible) and nothing moves.
- cancel: an unsent payment is suspended; an earmark is undone by the reverse movement.
- fund_waiting: when money arrives in a source, waiting payments are earmarked first-in
  first-out, until one does not fit.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.payments import ledger
from services.payments.domain import ledger as dl
from services.payments.domain import payments as ps
from services.payments.models import disbursements, payments
from services.payments.storage import utcnow


async def _set_status(session: AsyncSession, payment_id: str, old: str, new: str, **values: Any) -> bool:
    result = await session.execute(payments.update().where(payments.c.id == payment_id, payments.c.status == old)
                                   .values(status=new, updated_at=utcnow(), **values))
    return result.rowcount == 1


async def earmark(session: AsyncSession, p: Mapping[str, Any], *, actor: str) -> str | None:
    """Returns the new status, or None when the payment changed meanwhile (nothing done)."""
    # claim the payment first (row lock on PostgreSQL): only one transaction moves its money
    if not await _set_status(session, p["id"], p["status"], ps.READY, reject_reason=None):
        return None
    amount = int(p["amount_fen"])
    posted = await ledger.try_post(session, [dl.debit(dl.payable(p["person_id"]), amount, p["id"]),
                                             dl.credit(p["source_account"], amount, p["id"])],
                                   kind="earmark", actor=actor, region_code=p["region_code"],
                                   ref_type="payment", ref_id=p["id"])
    if posted is None:
        await _set_status(session, p["id"], ps.READY, ps.AWAITING_FUNDS)
        return ps.AWAITING_FUNDS
    return ps.READY


async def cancel(session: AsyncSession, p: Mapping[str, Any], *, actor: str, reason: str) -> bool:
    """Suspend an unsent payment; in-flight and paid ones are never touched here."""
    if p["status"] not in ps.CANCELLABLE:
        return False
    if not await _set_status(session, p["id"], p["status"], ps.SUSPENDED, last_error=reason):
        return False
    if p["status"] in ps.EARMARKED:
        amount = int(p["amount_fen"])
        await ledger.post(session, [dl.debit(p["source_account"], amount, p["id"]),
                                    dl.credit(dl.payable(p["person_id"]), amount, p["id"])],
                          kind="earmark_reversed", actor=actor, region_code=p["region_code"],
                          ref_type="payment", ref_id=p["id"], memo=reason)
    return True


async def fund_waiting(session: AsyncSession, source_account: str, *, actor: str, limit: int = 500) -> int:
    rows = (await session.execute(
        sa.select(payments).where(payments.c.source_account == source_account,
                                  payments.c.status == ps.AWAITING_FUNDS)
        .order_by(payments.c.created_at, payments.c.id).limit(limit))).mappings().all()
    funded = 0
    touched: set[str] = set()
    for p in rows:
        status = await earmark(session, p, actor=actor)
        if status == ps.AWAITING_FUNDS:
            break  # first in, first out: the next ones wait behind it
        if status is None:
            continue
        funded += 1
        if p["disbursement_id"]:
            touched.add(p["disbursement_id"])
    for d in sorted(touched):
        await refresh_disbursement(session, d)
    return funded


async def release_due(session: AsyncSession, today: date, *, actor: str) -> int:
    """L4 staged payments: earmark the stages whose day has come."""
    rows = (await session.execute(
        sa.select(payments).where(payments.c.status == ps.SCHEDULED, payments.c.release_on <= today)
        .order_by(payments.c.release_on, payments.c.id))).mappings().all()
    for p in rows:
        await earmark(session, p, actor=actor)
        if p["disbursement_id"]:
            await refresh_disbursement(session, p["disbursement_id"])
    return len(rows)


def disbursement_status(stage_statuses: list[str]) -> str:
    s = set(stage_statuses)
    if not s or ps.UNSIGNED in s:
        return "awaiting_signoffs"
    if s == {ps.PAID}:
        return "paid"
    for status in (ps.SUSPENDED, ps.REJECTED, ps.AWAITING_FUNDS, ps.AWAITING_ACCOUNT):
        if status in s:
            return status
    if ps.PAID in s:
        return "partially_paid"
    return "in_payment"


async def refresh_disbursement(session: AsyncSession, disbursement_id: str) -> str:
    statuses = list((await session.execute(
        sa.select(payments.c.status).where(payments.c.disbursement_id == disbursement_id)
        .order_by(payments.c.stage))).scalars())
    if not statuses:
        return "awaiting_signoffs"
    status = disbursement_status(statuses)
    await session.execute(disbursements.update().where(disbursements.c.id == disbursement_id,
                                                       disbursements.c.status != status)
                          .values(status=status, updated_at=utcnow()))
    return status
