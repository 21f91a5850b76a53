"""Monthly benefits (P5): 低保 and 特困 entitlements from eligibility's events, and payroll runs.

A run pays one month for every active entitlement in a county or below, in ONE set-based
statement: ``INSERT … SELECT … ON CONFLICT (entitlement_id, month, kind) DO NOTHING``. The
payments' ids are derived from (kind, month, entitlement), so re-running a month, or two runs
racing (the second waits on the unique index, then inserts nothing), never creates a second payment:
a re-run only adds what is missing (a beneficiary approved since). In the same transaction the
run earmarks the money — one ledger transaction: a debit per beneficiary's payable, one credit
to the county budget — and writes one ``payments.payroll.completed`` event. A budget that
cannot cover the run refuses it whole (409) and nothing changes.

Price subsidies (价格临时补贴) are their own kind: ``amount_per_person`` × the people covered.
"""
from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import sqlalchemy as sa

from shared.auth import Principal, county_of, is_region_code, region_level
from shared.db import UTCDateTime, insert_ignore
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.events.eligibility import BenefitChanged, DecisionMade
from shared.events.payments import PayrollRunCompleted
from shared.logging import get_logger
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork
from shared.money import from_fen, to_fen
from shared.pii import PersonVault
from shared.runtime import ServiceRuntime

from services.payments import audit, ledger, payment_ops
from services.payments.domain import ledger as dl
from services.payments.domain import payments as ps
from services.payments.domain.periods import (
    format_month, gradual_exit_last_month, month_of, parse_month, stop_last_month,
)
from services.payments.models import (
    deaths, entitlement_amounts, entitlement_persons, entitlements, ledger_accounts, ledger_entries,
    ledger_transactions, payments, payroll_runs, person_vault,
)
from services.payments.settings import Settings
from services.payments.storage import actor, dialect, in_region, prefix_bounds, utcnow
from services.payments.views import iso, yuan

log = get_logger("payments.payroll")
PAYING = ("approved", "single_person", "gradual_exit")
KIND_CODES = {"benefit": "B", "price_subsidy": "S"}
EVENT_ACTOR = "system:eligibility-events"


class _NothingNew(Exception):
    pass


_PARAM_TYPES: dict[str, Any] = {
    "id_prefix": sa.String(), "kind": sa.String(), "month": sa.Date(), "run_id": sa.String(),
    "now": UTCDateTime(), "lo": sa.String(), "hi": sa.String(), "per_person": sa.BigInteger(), "tx": sa.BigInteger(),
}


def _sql(text: str, params: dict[str, Any]) -> Any:
    """A typed text statement bound with exactly the parameters it names."""
    names = [n for n in params if f":{n}" in text]
    return sa.text(text).bindparams(*(sa.bindparam(n, params[n], type_=_PARAM_TYPES[n]) for n in names))


class PayrollService:
    def __init__(self, runtime: ServiceRuntime, settings: Settings, wake_sender: Any) -> None:
        self.runtime = runtime
        self.settings = settings
        self.wake_sender = wake_sender
        self.persons = PersonVault(settings.data_encryption_key, person_vault)

    # -- entitlements from eligibility ---------------------------------------------------------
    async def on_decision(self, tx: UnitOfWork, env: Envelope, data: DecisionMade) -> None:
        s = tx.session
        existing = (await s.execute(sa.select(entitlements).where(entitlements.c.id == data.case_id))
                    ).mappings().first()
        if data.outcome not in PAYING or not data.monthly_amount or data.monthly_amount <= 0:
            if existing is not None:  # denied or transferred on review: the benefit stops
                await self._end(tx, existing, stop_last_month(data.effective_from), reason=data.outcome)
            return
        now = utcnow()
        start = month_of(data.effective_from)
        last = (gradual_exit_last_month(data.effective_from, data.exit_months or self.settings.gradual_exit_default_months)
                if data.outcome == "gradual_exit" else None)
        # the numbers stay in the vault; every row of this service holds the person keys
        keys = await self.persons.keep(s, [data.applicant_person_id, *data.covered_person_ids])
        payee = keys[data.applicant_person_id]
        covered = sorted({keys[p] for p in data.covered_person_ids} or {payee})
        if existing is None:
            await insert_ignore(s, entitlements, {
                "id": data.case_id, "program": data.program, "region_code": data.region_code,
                "county_code": county_of(data.region_code), "payee_person_id": payee,
                "covered_count": len(covered), "monthly_fen": to_fen(data.monthly_amount), "amount_from": start,
                "first_month": start, "last_month": last, "status": "active", "decision_id": data.decision_id,
                "updated_at": now})
        else:
            await s.execute(entitlements.update().where(entitlements.c.id == data.case_id).values(
                covered_count=len(covered), first_month=min(start, existing["first_month"]), last_month=last,
                decision_id=data.decision_id, updated_at=now))
            await s.execute(entitlement_persons.delete().where(entitlement_persons.c.entitlement_id == data.case_id))
        for person in covered:
            await insert_ignore(s, entitlement_persons, {"entitlement_id": data.case_id, "person_id": person})
        await self._set_amount(tx, data.case_id, start, to_fen(data.monthly_amount))
        if last is not None:
            await self._cancel_after(tx, data.case_id, last, reason="gradual exit ended")
        # a decision for somebody already reported dead is stopped at once (P5)
        died = await s.scalar(sa.select(sa.func.min(deaths.c.date_of_death)).where(
            deaths.c.person_id.in_([payee] + (covered if len(covered) == 1 else []))))
        if died is not None:
            await s.execute(entitlements.update().where(entitlements.c.id == data.case_id).values(
                status="suspended", suspended_reason="death", died_on=died, last_month=month_of(died)))

    async def on_benefit_changed(self, tx: UnitOfWork, env: Envelope, data: BenefitChanged) -> None:
        s = tx.session
        e = (await s.execute(sa.select(entitlements).where(entitlements.c.id == data.case_id))).mappings().first()
        if e is None:
            log.warning("benefit_change_for_unknown_case", event_id=env.id, change=data.change)
            return
        if data.change == "unchanged":
            return
        if data.change == "stop":
            await self._end(tx, e, stop_last_month(data.effective_from), reason="stopped")
            return
        if data.new_monthly_amount is not None and data.new_monthly_amount > 0:
            await self._set_amount(tx, e["id"], month_of(data.effective_from), to_fen(data.new_monthly_amount))
        if data.change == "gradual_exit":
            # exit_until is the last day of the exit period (eligibility's domain/changes.py)
            last = (month_of(data.exit_until) if data.exit_until is not None
                    else gradual_exit_last_month(data.effective_from, self.settings.gradual_exit_default_months))
            await self._end(tx, e, last, reason="gradual exit ended")

    async def _set_amount(self, tx: UnitOfWork, entitlement_id: str, from_month: date, fen: int) -> None:
        s = tx.session
        if not await insert_ignore(s, entitlement_amounts, {"entitlement_id": entitlement_id,
                                                            "effective_month": from_month, "monthly_fen": fen}):
            await s.execute(entitlement_amounts.update().where(
                entitlement_amounts.c.entitlement_id == entitlement_id,
                entitlement_amounts.c.effective_month == from_month).values(monthly_fen=fen))
        latest = (await s.execute(sa.select(entitlement_amounts).where(
            entitlement_amounts.c.entitlement_id == entitlement_id)
            .order_by(entitlement_amounts.c.effective_month.desc()).limit(1))).mappings().one()
        await s.execute(entitlements.update().where(entitlements.c.id == entitlement_id).values(
            monthly_fen=latest["monthly_fen"], amount_from=latest["effective_month"], updated_at=utcnow()))
        # unsent payments of the months affected carry the new amount (nothing was sent under their key yet)
        stale = (await s.execute(sa.select(payments).where(
            payments.c.entitlement_id == entitlement_id, payments.c.kind == "benefit",
            payments.c.month >= from_month, payments.c.amount_fen != fen,
            payments.c.status.in_((ps.READY, ps.AWAITING_ACCOUNT, ps.AWAITING_FUNDS, ps.REJECTED))))
        ).mappings().all()
        for p in stale:
            in_force = await s.scalar(sa.select(entitlement_amounts.c.monthly_fen).where(
                entitlement_amounts.c.entitlement_id == entitlement_id,
                entitlement_amounts.c.effective_month <= p["month"])
                .order_by(entitlement_amounts.c.effective_month.desc()).limit(1))
            if in_force is None or int(in_force) == int(p["amount_fen"]):
                continue
            # take the payment only if nobody (the bank sender) took it meanwhile
            keep = ps.REJECTED if p["status"] == ps.REJECTED else ps.AWAITING_FUNDS
            taken = await s.execute(payments.update().where(payments.c.id == p["id"], payments.c.status == p["status"])
                                    .values(amount_fen=int(in_force), status=keep, updated_at=utcnow()))
            if taken.rowcount != 1:
                continue
            if p["status"] in ps.EARMARKED:
                await ledger.post(s, [dl.debit(p["source_account"], int(p["amount_fen"]), p["id"]),
                                      dl.credit(dl.payable(p["person_id"]), int(p["amount_fen"]), p["id"])],
                                  kind="earmark_reversed", actor=EVENT_ACTOR, region_code=p["region_code"],
                                  ref_type="payment", ref_id=p["id"], memo="amount changed")
            if keep == ps.AWAITING_FUNDS:  # a rejected one is earmarked again when its account is corrected
                await payment_ops.earmark(s, {**p, "amount_fen": int(in_force), "status": ps.AWAITING_FUNDS},
                                          actor=EVENT_ACTOR)

    async def _end(self, tx: UnitOfWork, e: Any, last: date, *, reason: str) -> None:
        last_month = min(last, e["last_month"]) if e["last_month"] else last
        await tx.session.execute(entitlements.update().where(entitlements.c.id == e["id"]).values(
            last_month=last_month, updated_at=utcnow()))
        await self._cancel_after(tx, e["id"], last_month, reason=reason)

    async def _cancel_after(self, tx: UnitOfWork, entitlement_id: str, last_month: date, *, reason: str) -> None:
        rows = (await tx.session.execute(sa.select(payments).where(
            payments.c.entitlement_id == entitlement_id, payments.c.month > last_month))).mappings().all()
        for p in rows:
            await payment_ops.cancel(tx.session, p, actor=EVENT_ACTOR, reason=reason)

    # -- runs ----------------------------------------------------------------------------------
    @staticmethod
    def _check_scope(principal: Principal, region_code: str, month_text: str) -> tuple[date, str]:
        problems = []
        month = None
        if not is_region_code(region_code):
            problems.append(("region_code", "must be a 12-digit region code"))
        elif region_level(region_code) in ("province", "city"):
            problems.append(("region_code", "payroll runs are per county (one budget) or below"))
        try:
            month = parse_month(month_text)
        except ValueError as exc:
            problems.append(("month", str(exc)))
        if problems:
            raise InvalidInput("; ".join(f"{f}: {m}" for f, m in problems),
                               errors=[{"field": f, "message": m} for f, m in problems])
        if not principal.covers(region_code):
            raise Forbidden(f"region {region_code} is outside this token's region {principal.region}")
        assert month is not None
        return month, county_of(region_code)

    async def run(self, principal: Principal, *, region_code: str, month: str, kind: str = "benefit",
                  amount_per_person_fen: int | None = None) -> tuple[int, dict[str, Any]]:
        """(201, the new run) or (200, the latest run when nothing was missing)."""
        first_day, county = self._check_scope(principal, region_code, month)
        if kind == "price_subsidy" and (amount_per_person_fen is None or amount_per_person_fen <= 0):
            raise InvalidInput.field("amount_per_person", "must be more than 0.00")
        run_id = str(uuid.uuid4())
        budget = dl.county_budget(county)
        now = utcnow()
        who = actor(principal)
        try:
            async with self.runtime.uow() as tx:
                s = tx.session
                tx_id = await s.scalar(ledger_transactions.insert().values(
                    kind="payroll" if kind == "benefit" else "price_subsidy", region_code=county,
                    ref_type="payroll_run", ref_id=run_id, memo=f"{kind} {format_month(first_day)} {region_code}",
                    actor=who, created_at=now).returning(ledger_transactions.c.id))
                count, total = await self._insert_payments(s, run_id=run_id, tx_id=int(tx_id), region_code=region_code,
                                                           month=first_day, kind=kind, per_person=amount_per_person_fen,
                                                           now=now)
                if count == 0:
                    raise _NothingNew
                # the budget row is locked only now, for the check and the move: other postings of
                # the county are not held up by the insert (a racing run of the same month waits on
                # the unique index above and then finds nothing new)
                balances = await ledger.lock_balances(s, [budget])
                # the one credit that balances the per-beneficiary debits; the domain checks the sums
                lines = [dl.debit(dl.payable("*"), total), dl.credit(budget, total)]
                dl.apply(balances, lines)  # Overdraft → 409, everything rolls back
                await s.execute(ledger_entries.insert().values(transaction_id=tx_id, account=budget, side=dl.CREDIT,
                                                               amount_fen=total))
                await s.execute(ledger_accounts.update().where(ledger_accounts.c.code == budget)
                                .values(balance_fen=ledger_accounts.c.balance_fen - total))
                await s.execute(payroll_runs.insert().values(
                    id=run_id, region_code=region_code, month=first_day, kind=kind,
                    amount_per_person_fen=amount_per_person_fen, payments_created=count, total_fen=total,
                    created_by=who, created_at=now, ledger_tx_id=tx_id))
                await audit.record(s, principal, "payroll.run", "payroll_run", run_id,
                                   {"region_code": region_code, "month": format_month(first_day), "kind": kind,
                                    "payments": count, "total_fen": total})
                tx.emit(PayrollRunCompleted(run_id=run_id, region_code=region_code, month=format_month(first_day),
                                            kind=kind, payments_created=count, total_amount=from_fen(total),
                                            completed_at=now), subject=run_id)
        except _NothingNew:
            latest = await self._latest(region_code, first_day, kind)
            return 200, (latest or {"run_id": None, "region_code": region_code, "month": format_month(first_day),
                                    "kind": kind, "payments_created": 0, "total": "0.00"}) | {"new_payments": 0}
        except dl.Overdraft as exc:
            raise Conflict(f"county budget {county} holds {yuan(exc.balance_fen)} yuan; this run needs "
                           f"{yuan(-exc.change_fen)} yuan. Nothing was paid.",
                           errors=[{"field": "region_code", "message": "county budget insufficient"}]) from None
        self.wake_sender()
        return 201, await self.get_run(principal, run_id) | {"new_payments": count}

    async def _insert_payments(self, s: Any, *, run_id: str, tx_id: int, region_code: str, month: date,
                               kind: str, per_person: int | None, now: Any) -> tuple[int, int]:
        lo, hi = prefix_bounds(region_code)
        if kind == "benefit":
            amount = """CASE WHEN e.amount_from <= :month THEN e.monthly_fen ELSE (
                SELECT a.monthly_fen FROM entitlement_amounts a WHERE a.entitlement_id = e.id
                AND a.effective_month <= :month ORDER BY a.effective_month DESC LIMIT 1) END"""
        else:
            amount = ":per_person * e.covered_count"
        upper = "AND e.region_code < :hi" if hi is not None else ""
        select = f"""
            SELECT :id_prefix || c.id, :kind, c.program, c.id, :month, :run_id, c.payee_person_id, c.region_code,
                   'county_budget:' || c.county_code, c.amt, 'ready', 0, 0, :now
            FROM (SELECT e.id, e.program, e.payee_person_id, e.region_code, e.county_code, ({amount}) AS amt
                  FROM entitlements e
                  WHERE e.region_code >= :lo {upper} AND e.status = 'active'
                    AND e.program IN ('dibao', 'tekun')
                    AND e.first_month <= :month AND (e.last_month IS NULL OR e.last_month >= :month)) c
            WHERE c.amt > 0"""
        columns = ("id, kind, program, entitlement_id, month, run_id, person_id, region_code, source_account, "
                   "amount_fen, status, attempt, send_count, created_at")
        params = {"id_prefix": f"{KIND_CODES[kind]}{month:%Y%m}-", "kind": kind, "month": month, "run_id": run_id,
                  "now": now, "lo": lo, "hi": hi, "per_person": per_person, "tx": tx_id}
        # No conflict target: the id is derived from (kind, month, entitlement), so a racing run
        # collides on the primary key as often as on the (entitlement_id, month, kind) index, and
        # both mean "already paid this month" (a targeted clause let the pkey race raise a 500).
        conflict = "ON CONFLICT DO NOTHING"
        if dialect(s) == "postgresql":
            row = (await s.execute(_sql(f"""
                WITH ins AS (INSERT INTO payments ({columns}) {select} {conflict}
                             RETURNING id, person_id, amount_fen),
                     ent AS (INSERT INTO ledger_entries (transaction_id, account, side, amount_fen, payment_id)
                             SELECT :tx, 'payable:' || person_id, 'D', amount_fen, id FROM ins)
                SELECT count(*), coalesce(sum(amount_fen), 0) FROM ins""", params))).one()
        else:
            await s.execute(_sql(f"INSERT INTO payments ({columns}) {select} {conflict}", params))
            await s.execute(_sql("""
                INSERT INTO ledger_entries (transaction_id, account, side, amount_fen, payment_id)
                SELECT :tx, 'payable:' || person_id, 'D', amount_fen, id FROM payments WHERE run_id = :run_id""",
                params))
            row = (await s.execute(_sql(
                "SELECT count(*), coalesce(sum(amount_fen), 0) FROM payments WHERE run_id = :run_id", params))).one()
        return int(row[0]), int(row[1])

    # -- reading ---------------------------------------------------------------------------------
    @staticmethod
    def _view(r: Any) -> dict[str, Any]:
        return {"run_id": r["id"], "region_code": r["region_code"], "month": format_month(r["month"]),
                "kind": r["kind"], "amount_per_person": yuan(r["amount_per_person_fen"]),
                "payments_created": r["payments_created"], "total": yuan(r["total_fen"]),
                "created_by": r["created_by"], "created_at": iso(r["created_at"]),
                "ledger_transaction_id": r["ledger_tx_id"]}

    async def _latest(self, region_code: str, month: date, kind: str) -> dict[str, Any] | None:
        async with self.runtime.session_factory() as s:
            r = (await s.execute(sa.select(payroll_runs).where(
                payroll_runs.c.region_code == region_code, payroll_runs.c.month == month, payroll_runs.c.kind == kind)
                .order_by(payroll_runs.c.created_at.desc()).limit(1))).mappings().first()
        return None if r is None else self._view(r)

    async def get_run(self, principal: Principal, run_id: str) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            r = (await s.execute(sa.select(payroll_runs).where(payroll_runs.c.id == run_id))).mappings().first()
        if r is None or not principal.covers(r["region_code"]):
            raise NotFound(f"payroll run {run_id} not found")
        return self._view(r)

    async def list_runs(self, principal: Principal, *, region_code: str | None, month: date | None) -> list[dict[str, Any]]:
        q = sa.select(payroll_runs).where(in_region(payroll_runs.c.region_code, region_code or principal.region))
        if month is not None:
            q = q.where(payroll_runs.c.month == month)
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(q.order_by(payroll_runs.c.created_at.desc()).limit(500))).mappings().all()
        return [self._view(r) for r in rows]
