"""Township reserve funds (乡镇临时救助备用金), P1 and P4.

- County budget: county finance books the budget allotted to social assistance
  (appropriation → county budget). The county budget never goes below zero.
- P1 pre-allocation (联合行文预拨): requested by either county role, it moves money from the
  county budget to the township reserve only once BOTH county civil affairs and county finance
  approved it (two people, any order).
- P4 reimbursement (报账列支): the township finance leader reports a period's spending; county
  finance approves it and the reserve is replenished by that amount.
- P4 visibility: per township, 资金趴窝 (money idle for ``reserve_idle_days``) and 以拨代支
  (reported spending with no payouts behind it) as figures and as ``payments.reserve.alert``.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shared.auth import Principal, county_of, is_region_code, region_level
from shared.calendar import SHANGHAI, to_shanghai_date
from shared.db import insert_ignore
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.events.payments import ReserveFundAlert
from shared.money import from_fen
from shared.runtime import ServiceRuntime

from services.payments import audit, ledger, payment_ops, signing
from services.payments.domain import ledger as dl
from services.payments.domain import payments as ps
from services.payments.domain import reserve as dr
from services.payments.domain import signoffs as so
from services.payments.models import (
    ledger_accounts, ledger_entries, ledger_transactions, payments, reimbursements, reserve_alerts,
    reserve_allocations,
)
from services.payments.settings import Settings
from services.payments.storage import actor, in_region, lock_one, utcnow
from services.payments.views import iso, yuan


def _township(code: str, field: str) -> str:
    if not is_region_code(code) or region_level(code) != "township":
        raise InvalidInput.field(field, "must be the 12-digit code of a township (乡镇/街道)")
    return code


def _county(code: str, field: str) -> str:
    if not is_region_code(code) or region_level(code) != "county":
        raise InvalidInput.field(field, "must be the 12-digit code of a county (县/区)")
    return code


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00, last+1 00:00) in Asia/Shanghai, as instants."""
    return (datetime.combine(first, time.min, SHANGHAI),
            datetime.combine(last + timedelta(days=1), time.min, SHANGHAI))


class ReserveService:
    def __init__(self, runtime: ServiceRuntime, settings: Settings, wake_sender: Callable[[], None]) -> None:
        self.runtime = runtime
        self.settings = settings
        self.wake_sender = wake_sender

    # -- county budget -------------------------------------------------------------------------
    async def appropriate(self, principal: Principal, *, county_code: str, amount_fen: int, reference: str,
                          note: str | None) -> dict[str, Any]:
        _county(county_code, "county_code")
        if not principal.covers(county_code):
            raise Forbidden(f"region {county_code} is outside this token's region {principal.region}")
        async with self.runtime.uow() as tx:
            posted = await ledger.post(tx.session, [dl.debit(dl.county_budget(county_code), amount_fen),
                                                    dl.credit(dl.appropriation(county_code), amount_fen)],
                                       kind="appropriation", actor=actor(principal), region_code=county_code,
                                       ref_type="appropriation", ref_id=reference[:64], memo=note)
            await audit.record(tx.session, principal, "budget.appropriated", "county", county_code,
                               {"amount_fen": amount_fen, "reference": reference, "transaction": posted.transaction_id})
            funded = await payment_ops.fund_waiting(tx.session, dl.county_budget(county_code), actor=actor(principal))
        if funded:
            self.wake_sender()
        return {"county_code": county_code, "transaction_id": posted.transaction_id, "amount": yuan(amount_fen),
                "county_budget_balance": yuan(posted.balances[dl.county_budget(county_code)]),
                "payments_funded": funded}

    # -- P1 pre-allocations ----------------------------------------------------------------------
    async def request_allocation(self, principal: Principal, *, township_code: str, amount_fen: int, reference: str,
                                 note: str | None) -> dict[str, Any]:
        _township(township_code, "township_code")
        if not principal.covers(township_code):
            raise Forbidden(f"region {township_code} is outside this token's region {principal.region}")
        aid = str(uuid.uuid4())
        async with self.runtime.uow() as tx:
            await tx.session.execute(reserve_allocations.insert().values(
                id=aid, township_code=township_code, county_code=county_of(township_code), amount_fen=amount_fen,
                reference=reference, note=note, status="pending", requested_by=actor(principal),
                requested_at=utcnow()))
            await audit.record(tx.session, principal, "allocation.requested", "allocation", aid,
                               {"township_code": township_code, "amount_fen": amount_fen, "reference": reference})
        return await self.get_allocation(principal, aid)

    async def approve_allocation(self, principal: Principal, allocation_id: str, comment: str | None) -> dict[str, Any]:
        funded = 0
        try:
            async with self.runtime.uow() as tx:
                s = tx.session
                a = await lock_one(s, reserve_allocations, reserve_allocations.c.id, allocation_id)
                if a is None or not principal.covers(a["township_code"]):
                    raise NotFound(f"allocation {allocation_id} not found")
                now = utcnow()
                complete = await signing.sign(s, principal, subject_type="allocation", subject_id=allocation_id,
                                              required=so.COUNTY_ROLES, comment=comment,
                                              action="allocation.approved", now=now)
                if complete:
                    reserve, budget = dl.reserve(a["township_code"]), dl.county_budget(a["county_code"])
                    try:
                        posted = await ledger.post(s, [dl.debit(reserve, int(a["amount_fen"])),
                                                       dl.credit(budget, int(a["amount_fen"]))],
                                                   kind="pre_allocation", actor=actor(principal),
                                                   region_code=a["township_code"], ref_type="allocation",
                                                   ref_id=allocation_id, memo=a["reference"])
                    except dl.Overdraft as exc:
                        raise Conflict(f"county budget holds {yuan(exc.balance_fen)} yuan, the allocation needs "
                                       f"{yuan(-exc.change_fen)}; book the budget first. Nothing changed.") from None
                    await s.execute(reserve_allocations.update().where(reserve_allocations.c.id == allocation_id)
                                    .values(status="approved", approved_at=now, ledger_tx_id=posted.transaction_id))
                    funded = await payment_ops.fund_waiting(s, reserve, actor=actor(principal))
        except IntegrityError:
            raise Conflict("this role or person has already approved") from None
        if funded:
            self.wake_sender()
        return await self.get_allocation(principal, allocation_id)

    async def get_allocation(self, principal: Principal, allocation_id: str) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            a = (await s.execute(sa.select(reserve_allocations).where(reserve_allocations.c.id == allocation_id))
                 ).mappings().first()
            if a is None or not principal.covers(a["township_code"]):
                raise NotFound(f"allocation {allocation_id} not found")
            signs = await signing.signoffs_of(s, "allocation", allocation_id)
        given = [so.Signoff(r["role"], r["signer_sub"]) for r in signs]
        return {"allocation_id": a["id"], "township_code": a["township_code"], "county_code": a["county_code"],
                "amount": yuan(a["amount_fen"]), "reference": a["reference"], "note": a["note"],
                "status": a["status"], "requested_by": a["requested_by"], "requested_at": iso(a["requested_at"]),
                "approved_at": iso(a["approved_at"]), "ledger_transaction_id": a["ledger_tx_id"],
                "approvals_required": list(so.COUNTY_ROLES), "approvals_missing": so.missing(so.COUNTY_ROLES, given),
                "approvals": [{"role": r["role"], "approver": {"sub": r["signer_sub"], "name": r["signer_name"]},
                               "approved_at": iso(r["signed_at"]), "comment": r["comment"]} for r in signs]}

    async def list_allocations(self, principal: Principal, region_code: str | None) -> list[dict[str, Any]]:
        async with self.runtime.session_factory() as s:
            ids = list((await s.execute(sa.select(reserve_allocations.c.id).where(
                in_region(reserve_allocations.c.township_code, region_code or principal.region))
                .order_by(reserve_allocations.c.requested_at.desc()).limit(500))).scalars())
        return [await self.get_allocation(principal, i) for i in ids]

    # -- P4 reimbursement reports ----------------------------------------------------------------
    async def file_reimbursement(self, principal: Principal, *, township_code: str, period_from: date,
                                 period_to: date, amount_fen: int, note: str | None) -> dict[str, Any]:
        _township(township_code, "township_code")
        if period_to < period_from:
            raise InvalidInput.field("period_to", "must not be before period_from")
        if not principal.covers(township_code):
            raise Forbidden(f"region {township_code} is outside this token's region {principal.region}")
        rid = str(uuid.uuid4())
        async with self.runtime.uow() as tx:
            s = tx.session
            reserve = dl.reserve(township_code)
            await ledger.lock_balances(s, [reserve])  # one report of a township at a time
            earlier = (await s.execute(sa.select(reimbursements).where(
                reimbursements.c.township_code == township_code, reimbursements.c.status != "rejected"))
            ).mappings().all()
            for r in earlier:
                if dr.periods_overlap(period_from, period_to, r["period_from"], r["period_to"]):
                    raise Conflict(f"report {r['id']} already covers {r['period_from']}–{r['period_to']}",
                                   errors=[{"field": "period_from", "message": "overlaps an earlier report"}])
            backed = await self._payouts(s, reserve, period_from, period_to)
            await s.execute(reimbursements.insert().values(
                id=rid, township_code=township_code, county_code=county_of(township_code), period_from=period_from,
                period_to=period_to, amount_fen=amount_fen, backed_fen=backed, status="filed", note=note,
                filed_by=actor(principal), filed_at=utcnow()))
            await audit.record(s, principal, "reimbursement.filed", "reimbursement", rid,
                               {"township_code": township_code, "amount_fen": amount_fen, "backed_fen": backed,
                                "period": [period_from.isoformat(), period_to.isoformat()]})
        return await self.get_reimbursement(principal, rid)

    @staticmethod
    async def _payouts(s: Any, reserve: str, first: date, last: date) -> int:
        lo, hi = day_bounds(first, last)
        value = await s.scalar(sa.select(sa.func.coalesce(sa.func.sum(payments.c.amount_fen), 0)).where(
            payments.c.kind == "linshi", payments.c.source_account == reserve, payments.c.status == ps.PAID,
            payments.c.paid_at >= lo, payments.c.paid_at < hi))
        return int(value or 0)

    async def decide_reimbursement(self, principal: Principal, reimbursement_id: str, *, approve: bool,
                                   note: str | None) -> dict[str, Any]:
        funded = 0
        async with self.runtime.uow() as tx:
            s = tx.session
            r = await lock_one(s, reimbursements, reimbursements.c.id, reimbursement_id)
            if r is None or not principal.covers(r["township_code"]):
                raise NotFound(f"reimbursement {reimbursement_id} not found")
            if r["status"] != "filed":
                raise Conflict(f"reimbursement {reimbursement_id} is already {r['status']}")
            now = utcnow()
            values: dict[str, Any] = {"status": "approved" if approve else "rejected", "decided_by": actor(principal),
                                      "decided_at": now, "decision_note": note}
            if approve:
                reserve = dl.reserve(r["township_code"])
                try:
                    posted = await ledger.post(s, [dl.debit(reserve, int(r["amount_fen"])),
                                                   dl.credit(dl.county_budget(r["county_code"]), int(r["amount_fen"]))],
                                               kind="replenishment", actor=actor(principal),
                                               region_code=r["township_code"], ref_type="reimbursement",
                                               ref_id=reimbursement_id, memo=note)
                except dl.Overdraft as exc:
                    raise Conflict(f"county budget holds {yuan(exc.balance_fen)} yuan, the replenishment needs "
                                   f"{yuan(-exc.change_fen)}. Nothing changed.") from None
                values["ledger_tx_id"] = posted.transaction_id
                funded = await payment_ops.fund_waiting(s, reserve, actor=actor(principal))
            await s.execute(reimbursements.update().where(reimbursements.c.id == reimbursement_id).values(**values))
            await audit.record(s, principal, "reimbursement.approved" if approve else "reimbursement.rejected",
                               "reimbursement", reimbursement_id, {"note": note})
        if funded:
            self.wake_sender()
        return await self.get_reimbursement(principal, reimbursement_id)

    @staticmethod
    def _reimbursement_view(r: Any) -> dict[str, Any]:
        return {"reimbursement_id": r["id"], "township_code": r["township_code"],
                "period_from": iso(r["period_from"]), "period_to": iso(r["period_to"]),
                "amount": yuan(r["amount_fen"]), "backed_by_payouts": yuan(r["backed_fen"]),
                "unbacked": yuan(dr.unbacked(int(r["amount_fen"]), int(r["backed_fen"]))),
                "status": r["status"], "note": r["note"], "filed_by": r["filed_by"], "filed_at": iso(r["filed_at"]),
                "decided_by": r["decided_by"], "decided_at": iso(r["decided_at"]),
                "decision_note": r["decision_note"], "ledger_transaction_id": r["ledger_tx_id"]}

    async def get_reimbursement(self, principal: Principal, reimbursement_id: str) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            r = (await s.execute(sa.select(reimbursements).where(reimbursements.c.id == reimbursement_id))
                 ).mappings().first()
        if r is None or not principal.covers(r["township_code"]):
            raise NotFound(f"reimbursement {reimbursement_id} not found")
        return self._reimbursement_view(r)

    async def list_reimbursements(self, principal: Principal, region_code: str | None) -> list[dict[str, Any]]:
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(sa.select(reimbursements).where(
                in_region(reimbursements.c.township_code, region_code or principal.region))
                .order_by(reimbursements.c.filed_at.desc()).limit(500))).mappings().all()
        return [self._reimbursement_view(r) for r in rows]

    # -- P4 figures ---------------------------------------------------------------------------------
    async def figures(self, s: Any, township_code: str, today: date) -> dict[str, Any]:
        reserve = dl.reserve(township_code)
        balance = await ledger.balance(s, reserve)
        allocated = int(await s.scalar(sa.select(sa.func.coalesce(sa.func.sum(reserve_allocations.c.amount_fen), 0))
                                       .where(reserve_allocations.c.township_code == township_code,
                                              reserve_allocations.c.status == "approved")) or 0)
        reports = (await s.execute(sa.select(reimbursements).where(reimbursements.c.township_code == township_code)
                                   .order_by(reimbursements.c.period_from))).mappings().all()
        approved = [r for r in reports if r["status"] == "approved"]
        by_status = dict((await s.execute(sa.select(payments.c.status, sa.func.sum(payments.c.amount_fen))
                                          .where(payments.c.kind == "linshi", payments.c.source_account == reserve)
                                          .group_by(payments.c.status))).all())
        waiting = int(await s.scalar(sa.select(sa.func.count()).select_from(payments).where(
            payments.c.kind == "linshi", payments.c.source_account == reserve,
            payments.c.status == ps.AWAITING_FUNDS)) or 0)
        movements = [dr.Movement(to_shanghai_date(at), int(amount) if side == dl.DEBIT else -int(amount))
                     for side, amount, at in (await s.execute(
                         sa.select(ledger_entries.c.side, ledger_entries.c.amount_fen, ledger_transactions.c.created_at)
                         .join(ledger_transactions, ledger_transactions.c.id == ledger_entries.c.transaction_id)
                         .where(ledger_entries.c.account == reserve))).all()]
        idle = dr.idle_funds(movements, today=today, idle_days=self.settings.reserve_idle_days)
        unbacked_reports = [r for r in approved if dr.unbacked(int(r["amount_fen"]), int(r["backed_fen"])) > 0]
        unbacked = sum(dr.unbacked(int(r["amount_fen"]), int(r["backed_fen"])) for r in unbacked_reports)
        paid = int(by_status.get(ps.PAID) or 0)
        reported_backing = sum(int(r["backed_fen"]) for r in approved)
        return {
            "township_code": township_code, "account": reserve, "as_of": today.isoformat(),
            "balance": yuan(balance), "allocated": yuan(allocated),
            "replenished": yuan(sum(int(r["amount_fen"]) for r in approved)),
            "paid_out": yuan(paid),
            "in_payment": yuan(sum(int(by_status.get(st) or 0) for st in
                                   (ps.READY, ps.AWAITING_ACCOUNT, ps.SENDING, ps.UNKNOWN))),
            "awaiting_funds": {"count": waiting, "amount": yuan(int(by_status.get(ps.AWAITING_FUNDS) or 0))},
            "paid_not_yet_reported": yuan(max(0, paid - reported_backing)),
            "reports_pending": sum(1 for r in reports if r["status"] == "filed"),
            "idle_funds": {"rule": "P4 资金趴窝", "amount": yuan(idle.amount_fen), "since": iso(idle.since),
                           "idle_days_threshold": self.settings.reserve_idle_days},
            "allocation_booked_as_spent": {
                "rule": "P4 以拨代支", "amount": yuan(unbacked),
                "since": iso(min((to_shanghai_date(r["decided_at"]) for r in unbacked_reports), default=None)),
                "reports": [r["id"] for r in unbacked_reports]},
            "_idle": idle, "_unbacked": unbacked, "_unbacked_reports": unbacked_reports,
        }

    @staticmethod
    def _public(f: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in f.items() if not k.startswith("_")}

    async def _townships(self, s: Any, region_code: str) -> list[str]:
        rows = (await s.execute(sa.select(ledger_accounts.c.region_code).where(
            ledger_accounts.c.kind == "reserve", in_region(ledger_accounts.c.region_code, region_code))
            .order_by(ledger_accounts.c.region_code))).scalars()
        return [r for r in rows if r]

    async def fund(self, principal: Principal, township_code: str, today: date) -> dict[str, Any]:
        _township(township_code, "township_code")
        if not principal.covers(township_code):
            raise NotFound(f"no reserve fund for {township_code} in region {principal.region}")
        async with self.runtime.session_factory() as s:
            return self._public(await self.figures(s, township_code, today))

    async def funds(self, principal: Principal, region_code: str | None, today: date) -> list[dict[str, Any]]:
        scope = region_code or principal.region
        if not principal.covers(scope):
            raise Forbidden(f"region {scope} is outside this token's region {principal.region}")
        async with self.runtime.session_factory() as s:
            return [self._public(await self.figures(s, t, today)) for t in await self._townships(s, scope)]

    async def scan(self, today: date, region_code: str | None = None) -> list[dict[str, Any]]:
        """P4 alerts: each new idle lot or unbacked report raises one ``payments.reserve.alert``."""
        raised = []
        async with self.runtime.uow() as tx:
            s = tx.session
            townships = (await self._townships(s, region_code) if region_code else [
                r for r in (await s.execute(sa.select(ledger_accounts.c.region_code).where(
                    ledger_accounts.c.kind == "reserve").order_by(ledger_accounts.c.region_code))).scalars() if r])
            for township in townships:
                f = await self.figures(s, township, today)
                found: list[tuple[str, int, date]] = []
                if f["_idle"].amount_fen > 0:
                    found.append(("idle_funds", f["_idle"].amount_fen, f["_idle"].since))
                if f["_unbacked"] > 0:
                    since = min(to_shanghai_date(r["decided_at"]) for r in f["_unbacked_reports"])
                    found.append(("allocation_booked_as_spent", f["_unbacked"], since))
                for kind, amount, since in found:
                    if not await insert_ignore(s, reserve_alerts, {"township_code": township, "kind": kind,
                                                                   "since": since, "amount_fen": amount,
                                                                   "observed_on": today}):
                        continue  # already reported
                    tx.emit(ReserveFundAlert(township_code=township, kind=kind, amount=from_fen(amount), since=since,
                                             observed_on=today), subject=township)
                    raised.append({"township_code": township, "kind": kind, "amount": yuan(amount),
                                   "since": since.isoformat()})
        return raised
