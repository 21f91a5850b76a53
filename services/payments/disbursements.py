"""Temporary-assistance payouts (临时救助): from the decision to money at the bank.

- Created from ``eligibility.decision.made`` (programme linshi, a paying outcome). L4: a
  township-level decision is paid from the township reserve of the handling township, a
  county-level one from the county budget.
- P2: three distinct people in the three township roles sign, in any order; county-level
  payouts need county civil affairs and county finance (domain/signoffs.py). Money moves only
  with the last sign-off: the first stage is earmarked then, later stages (一次审批、分阶段救助)
  are released one interval apart.
- 先行救助 (``pay_first``): paid right after the sign-offs though the file is incomplete;
  ``documents_complete`` stays false until a clerk marks it complete.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shared.auth import Principal, county_of, region_covers, township_of
from shared.calendar import Deadline, to_shanghai_date
from shared.db import InsertIgnoring
from shared.errors import Conflict, Forbidden, NotFound
from shared.events.eligibility import DecisionMade
from shared.events.payments import DisbursementPaid
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork
from shared.money import from_fen, to_fen
from shared.pii import PersonVault
from shared.runtime import ServiceRuntime

from services.payments import audit, payment_ops, signing
from services.payments.clocks import PaymentClockService
from services.payments.domain import deadlines as dd
from services.payments.domain import ledger as dl
from services.payments.domain import payments as ps
from services.payments.domain import signoffs as so
from services.payments.domain.periods import add_months
from services.payments.models import deaths, disbursements, payment_clocks, payments, person_vault
from services.payments.settings import Settings
from services.payments.storage import actor, in_region, lock_one, utcnow
from services.payments.views import disbursement_view

PAYING_OUTCOMES = ("approved", "single_person", "gradual_exit")
_IDS = uuid.UUID("6f1d7a52-3c0e-4d0b-9a55-2f1f4b1c9e01")


# Built once: the consumer runs these for every temporary-assistance decision.
_INSERT_DISBURSEMENTS = InsertIgnoring(disbursements, disbursements.c.id)
_INSERT_STAGES = payments.insert()
_LINK_CLOCK = payment_clocks.update().where(
    payment_clocks.c.case_id == sa.bindparam("b_case_id"), payment_clocks.c.disbursement_id.is_(None)
).values(disbursement_id=sa.bindparam("b_disbursement_id"))
_DEATHS_OF = sa.select(deaths.c.person_id, deaths.c.date_of_death).where(
    deaths.c.person_id.in_(sa.bindparam("person_ids", expanding=True)))


class InconsistentDecision(ValueError):
    """The decision cannot be paid as given (dead-lettered for an operator)."""


def disbursement_id_for(decision_id: str) -> str:
    """Deterministic: a decision delivered twice, or by two consumers at once, is one disbursement."""
    return str(uuid.uuid5(_IDS, decision_id))


def stage_amounts(data: DecisionMade) -> list[int]:
    total = to_fen(data.one_time_amount) if data.one_time_amount is not None else None
    if data.staged_payments:
        stages = [to_fen(a) for a in data.staged_payments]
        if any(a <= 0 for a in stages):
            raise InconsistentDecision("staged payments must be positive")
        if total is not None and sum(stages) != total:
            raise InconsistentDecision(f"staged payments sum to {sum(stages)} fen, the decision to {total} fen")
        return stages
    if total is None or total <= 0:
        return []
    return [total]


def _source(data: DecisionMade) -> tuple[str, str]:
    """L4: the account that pays, and what it is."""
    handling = data.handling_region_code
    if data.approval_level == "township":
        return dl.reserve(township_of(handling)), "township_reserve"
    return dl.county_budget(county_of(handling)), "county_budget"


def _disbursement_row(did: str, data: DecisionMade, stages: list[int], person: str, pay_by: Deadline,
                      now: datetime) -> dict[str, Any]:
    source, funded_from = _source(data)
    return {"id": did, "decision_id": data.decision_id, "case_id": data.case_id,
            "application_id": data.application_id, "program": data.program, "region_code": data.region_code,
            "handling_region_code": data.handling_region_code, "approval_level": data.approval_level,
            "funded_from": funded_from, "source_account": source, "person_id": person,
            "amount_fen": sum(stages), "stages": len(stages), "pay_first": data.pay_first,
            "documents_complete": not data.pay_first, "status": "awaiting_signoffs",
            "received_at": data.received_at, "pay_by": pay_by.due, "pay_by_provisional": pay_by.provisional,
            "decided_at": data.decided_at, "created_at": now, "updated_at": now}


class DisbursementService:
    def __init__(self, runtime: ServiceRuntime, settings: Settings, clocks: PaymentClockService,
                 wake_sender: Callable[[], None]) -> None:
        self.runtime = runtime
        self.settings = settings
        self.clocks = clocks
        self.wake_sender = wake_sender
        self.persons = PersonVault(settings.data_encryption_key, person_vault)

    # -- from the decision ------------------------------------------------------------------
    async def on_decision(self, tx: UnitOfWork, env: Envelope, data: DecisionMade) -> None:
        await self.on_decisions(tx, [data])

    async def on_decisions(self, tx: UnitOfWork, decided: Sequence[DecisionMade]) -> None:
        """A run of temporary-assistance decisions, in delivery order, with the effect of taking
        them one by one: one look-up of the clocks, one statement each for the vault, the
        disbursements, their stages and the clocks' links, whatever the run's length. A decision
        delivered twice (under two event ids, or twice in the run) is one disbursement."""
        s = tx.session
        pay_by = await self.clocks.ensure_for_decisions(tx, decided)
        closing: list[tuple[str, str]] = []
        planned: dict[str, tuple[DecisionMade, list[int]]] = {}  # by disbursement id, in order
        for data in decided:
            if data.outcome not in PAYING_OUTCOMES:
                closing.append((data.case_id, data.outcome))
                continue
            stages = stage_amounts(data)
            if not stages:
                closing.append((data.case_id, "nothing_to_pay"))
                continue
            planned.setdefault(disbursement_id_for(data.decision_id), (data, stages))
        # Closing a clock and linking it to its disbursement touch different columns under
        # conditions the other leaves alone: doing all closes first changes no outcome.
        await self.clocks.close(tx, closing)
        if not planned:
            return
        # On PostgreSQL the new numbers join the commit's one statement (shared/writes.py RowSets,
        # ON CONFLICT DO NOTHING) instead of a look-up and an insert here: nothing below reads the vault.
        pg = s.bind.dialect.name == "postgresql"
        keys = await self.persons.keep(s, [data.applicant_person_id for data, _ in planned.values()],
                                       rows=tx.rows if pg else None)
        now = utcnow()
        rows = {did: _disbursement_row(did, data, stages, keys[data.applicant_person_id], pay_by[data.case_id], now)
                for did, (data, stages) in planned.items()}
        created = await _INSERT_DISBURSEMENTS.inserted(s, list(rows.values()))
        fresh = [rows[did] for did in planned if did in created]
        if not fresh:
            return
        # one payment per stage, not yet authorised: nothing moves before the last sign-off
        await s.execute(_INSERT_STAGES, [
            {"id": f"{d['id']}-{i}", "kind": "linshi", "program": d["program"], "disbursement_id": d["id"],
             "stage": i, "person_id": d["person_id"], "region_code": d["handling_region_code"],
             "source_account": d["source_account"], "amount_fen": amount, "status": ps.UNSIGNED, "attempt": 0,
             "send_count": 0, "created_at": now}
            for d in fresh for i, amount in enumerate(planned[d["id"]][1], start=1)])
        # in order: a case decided twice in the run keeps its first disbursement, as one by one
        await s.execute(_LINK_CLOCK, [{"b_case_id": d["case_id"], "b_disbursement_id": d["id"]} for d in fresh])
        died = dict((await s.execute(_DEATHS_OF, {"person_ids": list({d["person_id"] for d in fresh})})).all())
        for d in fresh:
            if d["person_id"] in died:  # decided for somebody already reported dead: stopped at once (P5)
                for p in (await s.execute(sa.select(payments).where(payments.c.disbursement_id == d["id"]))
                          ).mappings().all():
                    await payment_ops.cancel(s, p, actor="system:death-register",
                                             reason=f"death on {died[d['person_id']]}")
                await payment_ops.refresh_disbursement(s, d["id"])

    # -- P2 sign-offs -----------------------------------------------------------------------
    async def sign(self, principal: Principal, disbursement_id: str, comment: str | None) -> dict[str, Any]:
        released = False
        try:
            async with self.runtime.uow() as tx:
                s = tx.session
                d = await lock_one(s, disbursements, disbursements.c.id, disbursement_id)
                if d is None or not self._visible(principal, d):
                    raise NotFound(f"disbursement {disbursement_id} not found")
                if not region_covers(principal.region, d["handling_region_code"]):
                    raise Forbidden(f"only staff of {d['handling_region_code']} sign this payout")
                if d["status"] == "suspended":
                    raise Conflict("this payout was stopped (the payee died); nothing may be signed")
                required = so.required_roles(d["approval_level"])
                now = utcnow()
                complete = await signing.sign(s, principal, subject_type="disbursement", subject_id=disbursement_id,
                                              required=required, comment=comment, action="disbursement.signed",
                                              now=now)
                if complete:
                    await self._release(s, d, now, actor(principal))
                    released = True
        except IntegrityError:
            # a racing sign-off by the same person or for the same role committed first
            raise Conflict("this role or person has already signed") from None
        if released:
            self.wake_sender()
        return await self.get(principal, disbursement_id)

    async def _release(self, s: Any, d: Any, now: datetime, who: str) -> None:
        """The last sign-off: stage 1 is earmarked now, later stages on their release day."""
        today = to_shanghai_date(now)
        await s.execute(disbursements.update().where(disbursements.c.id == d["id"]).values(
            signed_at=now, status="in_payment", updated_at=now))
        rows = (await s.execute(sa.select(payments).where(payments.c.disbursement_id == d["id"])
                                .order_by(payments.c.stage))).mappings().all()
        for p in rows:
            if p["status"] != ps.UNSIGNED:
                continue
            release_on = add_months(today, (p["stage"] - 1) * self.settings.stage_interval_months)
            if p["stage"] == 1 or release_on <= today:
                await s.execute(payments.update().where(payments.c.id == p["id"]).values(
                    status=ps.AWAITING_FUNDS, release_on=today))
                await payment_ops.earmark(s, {**p, "status": ps.AWAITING_FUNDS}, actor=who)
            else:
                await s.execute(payments.update().where(payments.c.id == p["id"]).values(
                    status=ps.SCHEDULED, release_on=release_on))
        await payment_ops.refresh_disbursement(s, d["id"])

    # -- 先行救助: the file is completed afterwards ----------------------------------------------
    async def complete_documents(self, principal: Principal, disbursement_id: str, note: str | None) -> dict[str, Any]:
        async with self.runtime.uow() as tx:
            d = await lock_one(tx.session, disbursements, disbursements.c.id, disbursement_id)
            if d is None or not self._visible(principal, d):
                raise NotFound(f"disbursement {disbursement_id} not found")
            if d["documents_complete"]:
                raise Conflict("the documents of this disbursement are already complete")
            await tx.session.execute(disbursements.update().where(disbursements.c.id == disbursement_id).values(
                documents_complete=True, documents_completed_at=utcnow(), documents_completed_by=actor(principal),
                updated_at=utcnow()))
            await audit.record(tx.session, principal, "disbursement.documents_completed", "disbursement",
                               disbursement_id, {"note": note})
        return await self.get(principal, disbursement_id)

    # -- when the bank accepted a stage ---------------------------------------------------------
    async def on_payment_paid(self, tx: UnitOfWork, p: Any, paid_at: datetime) -> None:
        s = tx.session
        d = (await s.execute(sa.select(disbursements).where(disbursements.c.id == p["disbursement_id"]))
             ).mappings().one()
        await payment_ops.refresh_disbursement(s, d["id"])
        first_paid_at = d["first_paid_at"]
        if first_paid_at is None:  # the first money stops the P3 clock
            first_paid_at = paid_at
            await s.execute(disbursements.update().where(disbursements.c.id == d["id"]).values(first_paid_at=paid_at))
            await self.clocks.mark_paid(tx, d["case_id"], paid_at, pay_by=d["pay_by"])
        # one event per stage paid (intake closes the case with the last); the time limit is the
        # case's: met when its first payment was in time
        tx.emit(DisbursementPaid(
            disbursement_id=d["id"], case_id=d["case_id"], application_id=d["application_id"], program=d["program"],
            region_code=d["region_code"], handling_region_code=d["handling_region_code"],
            person_id=await self.persons.reveal_one(s, d["person_id"]),
            amount=from_fen(int(p["amount_fen"])), funded_from=d["funded_from"], accepted_at=d["received_at"],
            paid_at=paid_at, pay_by=d["pay_by"],
            within_time_limit=dd.within_limit(to_shanghai_date(first_paid_at), d["pay_by"])), subject=d["case_id"])

    # -- reading ---------------------------------------------------------------------------------
    @staticmethod
    def _visible(principal: Principal, d: Any) -> bool:
        return region_covers(principal.region, d["handling_region_code"]) or region_covers(
            principal.region, d["region_code"])

    async def get(self, principal: Principal, disbursement_id: str) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            d = (await s.execute(sa.select(disbursements).where(disbursements.c.id == disbursement_id))
                 ).mappings().first()
            if d is None or not self._visible(principal, d):
                raise NotFound(f"disbursement {disbursement_id} not found")
            signs = await signing.signoffs_of(s, "disbursement", disbursement_id)
            stages = (await s.execute(sa.select(payments).where(payments.c.disbursement_id == disbursement_id)
                                      .order_by(payments.c.stage))).mappings().all()
            d = (await self.persons.rows_with_numbers(s, [d], "person_id"))[0]
        return disbursement_view(d, signs, stages, today=to_shanghai_date(utcnow()),
                                 state_on=self.clocks.state_on, role=principal.role)

    async def list(self, principal: Principal, *, region_code: str | None, status: str | None,
                   deadline: str | None, documents_complete: bool | None, limit: int = 200) -> list[dict[str, Any]]:
        scope = region_code or principal.region
        q = sa.select(disbursements).where(in_region(disbursements.c.handling_region_code, scope))
        if status:
            q = q.where(disbursements.c.status == status)
        if documents_complete is not None:
            q = q.where(disbursements.c.documents_complete == documents_complete)
        if deadline:
            q = q.where(disbursements.c.first_paid_at.is_(None), disbursements.c.status != "suspended")
        today = to_shanghai_date(utcnow())
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(q.order_by(disbursements.c.pay_by, disbursements.c.id).limit(limit * 5 if deadline
                                                                                                     else limit))
                    ).mappings().all()
            rows = await self.persons.rows_with_numbers(s, rows, "person_id")
            out = []
            for d in rows:
                if deadline and self.clocks.state_on(today, d["pay_by"]) != deadline:
                    continue
                signs = await signing.signoffs_of(s, "disbursement", d["id"])
                stages = (await s.execute(sa.select(payments).where(payments.c.disbursement_id == d["id"])
                                          .order_by(payments.c.stage))).mappings().all()
                out.append(disbursement_view(d, signs, stages, today=today, state_on=self.clocks.state_on,
                                             role=principal.role))
                if len(out) >= limit:
                    break
        return out
