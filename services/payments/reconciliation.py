"""Reconciliation (对账) of a region over a period: the ledger, the payments and the bank's
confirmations must agree. In scope: every payment of the region paid, confirmed by the bank,
or booked as paid in the period (Asia/Shanghai days, both ends included)."""
from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from shared.auth import Principal
from shared.errors import Forbidden, InvalidInput
from shared.runtime import ServiceRuntime

from services.payments.domain import ledger as dl
from services.payments.domain import reconciliation as dr
from services.payments.models import ledger_entries, ledger_transactions, payment_attempts, payments
from services.payments.reserve import day_bounds
from services.payments.storage import in_region
from services.payments.views import yuan

BOOKED_KINDS = ("bank_paid", "reversal:bank_paid")


class ReconciliationService:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    async def report(self, principal: Principal, *, region_code: str, first: date, last: date) -> dict[str, Any]:
        if last < first:
            raise InvalidInput.field("to", "must not be before from")
        if not principal.covers(region_code):
            raise Forbidden(f"region {region_code} is outside this token's region {principal.region}")
        lo, hi = day_bounds(first, last)
        region = in_region(payments.c.region_code, region_code)
        clearing = ledger_entries.c.account.like("bank_clearing:%")
        scope = sa.union(
            sa.select(payments.c.id).where(region, payments.c.paid_at >= lo, payments.c.paid_at < hi),
            sa.select(payment_attempts.c.payment_id).join(payments, payments.c.id == payment_attempts.c.payment_id)
            .where(region, payment_attempts.c.outcome == "accepted", payment_attempts.c.answered_at >= lo,
                   payment_attempts.c.answered_at < hi),
            sa.select(ledger_entries.c.payment_id)
            .join(ledger_transactions, ledger_transactions.c.id == ledger_entries.c.transaction_id)
            .join(payments, payments.c.id == ledger_entries.c.payment_id)
            .where(region, clearing, ledger_transactions.c.created_at >= lo, ledger_transactions.c.created_at < hi),
        ).subquery()
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(sa.select(payments.c.id, payments.c.status, payments.c.amount_fen, payments.c.person_id,
                                              payments.c.program, payments.c.kind, payments.c.month)
                                    .where(payments.c.id.in_(sa.select(scope.c.id))))).all()
            facts = {r.id: dr.PaymentFacts(r.id, r.status, int(r.amount_fen)) for r in rows}
            ids = sa.select(scope.c.id)
            for pid, side, amount in (await s.execute(
                    sa.select(ledger_entries.c.payment_id, ledger_entries.c.side, ledger_entries.c.amount_fen)
                    .where(clearing, ledger_entries.c.payment_id.in_(ids)))).all():
                f = facts[pid]
                (f.booked_debits if side == dl.DEBIT else f.booked_credits).append(int(amount))
            for pid, confirmed, amount in (await s.execute(
                    sa.select(payment_attempts.c.payment_id, payment_attempts.c.confirmed_fen,
                              payment_attempts.c.amount_fen)
                    .where(payment_attempts.c.outcome == "accepted", payment_attempts.c.payment_id.in_(ids)))).all():
                facts[pid].confirmations.append(int(confirmed if confirmed is not None else amount))
            # duplicates: one person paid twice for the same programme, kind and month
            months = sorted({r.month for r in rows if r.month is not None})
            live = []
            if months:
                live = (await s.execute(sa.select(payments.c.id, payments.c.person_id, payments.c.program,
                                                  payments.c.kind, payments.c.month)
                                        .where(region, payments.c.month.in_(months),
                                               payments.c.status.notin_(("suspended", "unsigned"))))).all()
        differences = dr.differences(facts.values()) + dr.duplicate_payments(
            (r.id, r.person_id, r.program, r.kind, r.month.isoformat() if r.month else "") for r in live)
        paid = [f for f in facts.values() if f.status == "paid"]
        return {
            "region_code": region_code, "from": first.isoformat(), "to": last.isoformat(),
            "payments_in_scope": len(facts),
            "totals": {"payments_paid": yuan(sum(f.amount_fen for f in paid)),
                       "ledger_booked": yuan(sum(f.booked_fen for f in facts.values())),
                       "bank_confirmed": yuan(sum(sum(f.confirmations) for f in facts.values()))},
            "balanced": not differences,
            "differences": [{"kind": d.kind, "payment_id": d.payment_id, "detail": d.detail,
                             **{k.removesuffix("_fen"): (yuan(v) if k.endswith("_fen") else v) for k, v in d.data.items()}}
                            for d in sorted(differences, key=lambda d: (d.kind, d.payment_id))],
        }
