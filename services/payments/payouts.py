"""Sending payments to the bank, crash-safe, and recording what the bank said.

1. claim (one transaction, committed): due payments become ``sending`` with a lease; a new
   attempt row holds the idempotency key and the exact body (account, amount) to send;
2. call the bank, outside any transaction;
3. record (one transaction per payment): accepted → money booked payable → bank clearing;
   rejected → money returned to the account it came from; unknown → re-sent later.

A crash between 2 and 3 leaves the payment ``sending``; once its lease runs out any process
re-sends the same attempt (same key, same body) and the bank answers with its first answer.
See domain/payments.py for the key rules.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag

from shared.aio import woken
from shared.auth import Principal, county_of, region_covers
from shared.calendar import to_shanghai_date
from shared.db import insert_ignore
from shared.errors import NotFound
from shared.idnumbers import mask_account_number
from shared.logging import get_logger
from shared.messaging.unit_of_work import UnitOfWork
from shared.money import from_fen
from shared.pii import PersonVault
from shared.privacy import present_id
from shared.runtime import ServiceRuntime

from services.payments import audit, deaths, ledger, payment_ops
from services.payments.accounts import AccountVault
from services.payments.bank import Bank, BankPayment, BankResult
from services.payments.domain import ledger as dl
from services.payments.domain import payments as ps
from services.payments.models import (
    disbursements, entitlements, payee_accounts, payment_attempts, payment_recoveries, payments, person_vault,
)
from services.payments.settings import Settings
from services.payments.storage import actor, dialect, in_region, lock_one, serialize, utcnow
from services.payments.views import iso, payment_view, present_account, yuan

log = get_logger("payments.payouts")
SENDER = "system:bank-sender"
_CLAIM_LOCK = 0x70617973656E64  # "paysend" (SQLite only needs the write lock)

PaidHook = Callable[[UnitOfWork, Any, datetime], Awaitable[None]]


@dataclass
class Claimed:
    payment: dict[str, Any]
    request: BankPayment


@dataclass
class DispatchStats:
    claimed: int = 0
    accepted: int = 0
    rejected: int = 0
    unknown: int = 0
    awaiting_account: int = 0
    stale: int = 0
    errors: list[str] = field(default_factory=list)


class PayoutService:
    def __init__(self, runtime: ServiceRuntime, settings: Settings, bank: Bank | None,
                 on_linshi_paid: PaidHook) -> None:
        self.runtime = runtime
        self.settings = settings
        self.bank = bank
        self.on_linshi_paid = on_linshi_paid
        # account numbers are stored encrypted; decrypted only for the bank and the paying roles
        self.accounts = AccountVault(settings.data_encryption_key)
        self.persons = PersonVault(settings.data_encryption_key, person_vault)
        self._wake = asyncio.Event()

    # -- the sender loop -----------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            try:
                stats = await self.dispatch_once()
                if stats.claimed >= self.settings.bank_batch_size:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or bank is down: try again later
                log.warning("dispatch_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            self._wake.clear()
            await woken(self._wake, self.settings.bank_poll_interval_s)

    async def dispatch_once(self, *, now: datetime | None = None) -> DispatchStats:
        stats = DispatchStats()
        if self.bank is None:
            return stats
        claimed = await self._claim(now or utcnow(), stats)
        stats.claimed = len(claimed)
        gate = asyncio.Semaphore(self.settings.bank_concurrency)
        bank = self.bank

        async def one(c: Claimed) -> None:
            async with gate:
                try:
                    result = await bank.send(c.request)
                except Exception as exc:  # an adapter bug must not lose the payment: unknown, same key later
                    result = BankResult("unknown", error=f"{type(exc).__name__}: {exc}"[:300])
                outcome = await self.record(c, result)
                setattr(stats, outcome, getattr(stats, outcome) + 1)

        await asyncio.gather(*(one(c) for c in claimed))
        return stats

    async def _claim(self, now: datetime, stats: DispatchStats) -> list[Claimed]:
        lease_until = now + timedelta(seconds=self.settings.lease_s)
        due = sa.or_(payments.c.status == ps.READY,
                     sa.and_(payments.c.status == ps.UNKNOWN, payments.c.next_attempt_at <= now),
                     sa.and_(payments.c.status == ps.SENDING, payments.c.lease_until <= now))
        out: list[Claimed] = []
        async with self.runtime.uow() as tx:
            s = tx.session
            q = sa.select(payments).where(due).order_by(payments.c.created_at, payments.c.id).limit(
                self.settings.bank_batch_size)
            if dialect(s) == "sqlite":
                await serialize(s, _CLAIM_LOCK)
            else:
                q = q.with_for_update(skip_locked=True)
            rows = (await s.execute(q)).mappings().all()
            people = sorted({r["person_id"] for r in rows})
            accounts = {a["person_id"]: a for a in (await s.execute(
                sa.select(payee_accounts).where(payee_accounts.c.person_id.in_(people)))).mappings()} if people else {}
            stopped = await self._stopped_by_death(s, rows)
            for p in rows:
                if p["status"] == ps.READY and p["id"] in stopped:  # a death that raced the payroll run
                    await payment_ops.cancel(s, p, actor=SENDER, reason=stopped[p["id"]])
                    if p["disbursement_id"]:
                        await payment_ops.refresh_disbursement(s, p["disbursement_id"])
                    continue
                if p["status"] == ps.READY:
                    acct = accounts.get(p["person_id"])
                    if acct is None:
                        await s.execute(payments.update().where(payments.c.id == p["id"]).values(
                            status=ps.AWAITING_ACCOUNT, updated_at=now))
                        stats.awaiting_account += 1
                        continue
                    number = self._account_number(p, acct["account_enc"], stats)
                    if number is None:
                        continue
                    attempt = int(p["attempt"]) + 1
                    key = ps.idempotency_key(p["id"], attempt)
                    # the attempt keeps the payee's ciphertext as it was (bound to the same person)
                    await s.execute(payment_attempts.insert().values(
                        payment_id=p["id"], attempt=attempt, idempotency_key=key,
                        account_enc=acct["account_enc"], account_masked=acct["account_masked"],
                        account_name=acct["account_name"],
                        bank_name=acct["bank_name"], amount_fen=p["amount_fen"], requested_at=now, sends=1))
                    a = {"attempt": attempt, "idempotency_key": key,
                         "account_name": acct["account_name"], "bank_name": acct["bank_name"],
                         "amount_fen": p["amount_fen"]}
                else:  # unknown outcome or an expired lease: the same attempt again, same key and body
                    attempt = int(p["attempt"])
                    a = dict((await s.execute(sa.select(payment_attempts).where(
                        payment_attempts.c.payment_id == p["id"], payment_attempts.c.attempt == attempt))
                    ).mappings().one())
                    number = self._account_number(p, a["account_enc"], stats)
                    if number is None:
                        continue
                    await s.execute(payment_attempts.update().where(
                        payment_attempts.c.payment_id == p["id"], payment_attempts.c.attempt == attempt)
                        .values(sends=payment_attempts.c.sends + 1))
                await s.execute(payments.update().where(payments.c.id == p["id"]).values(
                    status=ps.SENDING, attempt=attempt, lease_until=lease_until,
                    send_count=payments.c.send_count + 1, updated_at=now))
                out.append(Claimed({**p, "status": ps.SENDING, "attempt": attempt}, BankPayment(
                    payment_id=p["id"], attempt=attempt, idempotency_key=a["idempotency_key"],
                    account_number=number, account_name=a["account_name"], bank_name=a["bank_name"],
                    amount=from_fen(int(a["amount_fen"])),
                    reference=f"{p['program']} {p['month'].strftime('%Y-%m') if p['month'] else 'stage ' + str(p['stage'])}")))
        return out

    def _account_number(self, p: Any, token: str, stats: DispatchStats) -> str | None:
        """The plain number for the bank; None (the payment waits, loudly) when it does not
        decrypt: another DATA_ENCRYPTION_KEY, or a ciphertext moved from another person's row."""
        try:
            return self.accounts.open(p["person_id"], token)
        except (InvalidTag, ValueError) as exc:
            log.error("account_undecryptable", payment_id=p["id"], error=type(exc).__name__)
            stats.errors.append(f"{p['id']}: the account number does not decrypt (DATA_ENCRYPTION_KEY?)")
            return None

    @staticmethod
    async def _stopped_by_death(s: Any, rows: Any) -> dict[str, str]:
        """New attempts that a recorded death forbids (payments already in flight keep their key)."""
        ready = [r for r in rows if r["status"] == ps.READY]
        ent_ids = sorted({r["entitlement_id"] for r in ready if r["entitlement_id"]})
        people = sorted({r["person_id"] for r in ready if r["kind"] == "linshi"})
        died_ent: dict[str, Any] = {}
        died_people: dict[str, Any] = {}
        if ent_ids:
            result = await s.execute(sa.select(entitlements.c.id, entitlements.c.died_on).where(
                entitlements.c.id.in_(ent_ids), entitlements.c.died_on.isnot(None)))
            died_ent = {k: v for k, v in result.all()}
        if people:
            result = await s.execute(sa.select(deaths.deaths.c.person_id, deaths.deaths.c.date_of_death).where(
                deaths.deaths.c.person_id.in_(people)))
            died_people = {k: v for k, v in result.all()}
        out = {}
        for r in ready:
            died = died_ent.get(r["entitlement_id"]) if r["entitlement_id"] else died_people.get(r["person_id"])
            if died is not None and (r["month"] is None or r["month"] > died):
                out[r["id"]] = f"death on {died}"
        return out

    async def record(self, c: Claimed, result: BankResult) -> str:
        """Store the bank's answer for a claimed attempt; returns accepted/rejected/unknown/stale."""
        now = utcnow()
        pid, attempt = c.payment["id"], c.request.attempt
        async with self.runtime.uow() as tx:
            s = tx.session
            p = await lock_one(s, payments, payments.c.id, pid)
            if p is None or p["status"] != ps.SENDING or int(p["attempt"]) != attempt:
                return "stale"  # another sender recorded this attempt already
            this = sa.and_(payment_attempts.c.payment_id == pid, payment_attempts.c.attempt == attempt)
            county = county_of(p["region_code"])
            amount = int(p["amount_fen"])
            if result.outcome == "accepted":
                await ledger.post(s, [dl.debit(dl.bank_clearing(county), amount, pid),
                                      dl.credit(dl.payable(p["person_id"]), amount, pid)],
                                  kind="bank_paid", actor=SENDER, region_code=county, ref_type="payment", ref_id=pid,
                                  memo=f"bank ref {result.bank_ref}" if result.bank_ref else None, at=now)
                await s.execute(payments.update().where(payments.c.id == pid).values(
                    status=ps.PAID, paid_at=now, lease_until=None, next_attempt_at=None, last_error=None,
                    updated_at=now))
                await s.execute(payment_attempts.update().where(this).values(
                    outcome="accepted", answered_at=now, bank_ref=result.bank_ref,
                    confirmed_fen=result.confirmed_fen if result.confirmed_fen is not None else amount,
                    last_error=None))
                if p["disbursement_id"]:
                    await self.on_linshi_paid(tx, p, now)
                await deaths.flag_if_after_death(tx, self.persons, p, paid_on=to_shanghai_date(now))
            elif result.outcome == "rejected":
                # the money goes back where it came from, by a movement of its own
                await ledger.post(s, [dl.debit(p["source_account"], amount, pid),
                                      dl.credit(dl.payable(p["person_id"]), amount, pid)],
                                  kind="bank_returned", actor=SENDER, region_code=p["region_code"],
                                  ref_type="payment", ref_id=pid, memo=f"rejected: {result.reason}", at=now)
                await s.execute(payments.update().where(payments.c.id == pid).values(
                    status=ps.REJECTED, reject_reason=result.reason, lease_until=None, next_attempt_at=None,
                    updated_at=now))
                await s.execute(payment_attempts.update().where(this).values(
                    outcome="rejected", answered_at=now, reason=result.reason))
                if p["disbursement_id"]:
                    await payment_ops.refresh_disbursement(s, p["disbursement_id"])
                await payment_ops.fund_waiting(s, p["source_account"], actor=SENDER)
            else:
                delay = ps.retry_delay_s(int(p["send_count"]))
                await s.execute(payments.update().where(payments.c.id == pid).values(
                    status=ps.UNKNOWN, lease_until=None, next_attempt_at=now + timedelta(seconds=delay),
                    last_error=result.error, updated_at=now))
                await s.execute(payment_attempts.update().where(this).values(last_error=result.error))
        return result.outcome

    # -- payee accounts: correcting one retries what the bank refused ------------------------------
    async def set_account(self, principal: Principal, person_id: str, *, account_number: str,
                          account_name: str | None, bank_name: str | None) -> dict[str, Any]:
        retried = 0
        key = self.persons.key(person_id)  # the rows hold the person key, never the number
        async with self.runtime.uow() as tx:
            s = tx.session
            if not await self.person_in_region(s, principal, key):
                raise NotFound(f"no beneficiary {person_id} in region {principal.region}")
            values = {**self.accounts.seal(key, account_number), "account_name": account_name,
                      "bank_name": bank_name, "updated_at": utcnow(), "updated_by": actor(principal)}
            if not await insert_ignore(s, payee_accounts, {"person_id": key, **values}):
                await s.execute(payee_accounts.update().where(payee_accounts.c.person_id == key).values(**values))
            await audit.record(s, principal, "beneficiary.account_set", "person", key,
                               {"account_number": mask_account_number(account_number), "bank_name": bank_name})
            dead = await s.scalar(sa.select(deaths.deaths.c.date_of_death).where(
                deaths.deaths.c.person_id == key))
            rows = [] if dead is not None else (await s.execute(sa.select(payments).where(
                payments.c.person_id == key,
                payments.c.status.in_((ps.REJECTED, ps.AWAITING_ACCOUNT))).order_by(payments.c.created_at))
            ).mappings().all()
            for p in rows:
                if p["status"] == ps.AWAITING_ACCOUNT:
                    await s.execute(payments.update().where(payments.c.id == p["id"], payments.c.status == p["status"])
                                    .values(status=ps.READY, updated_at=utcnow()))
                else:  # rejected: the money was returned; earmark it again for a new attempt
                    await payment_ops.earmark(s, p, actor=actor(principal))
                    if p["disbursement_id"]:
                        await payment_ops.refresh_disbursement(s, p["disbursement_id"])
                retried += 1
        if retried:
            self.wake()
        return await self.beneficiary(principal, person_id) | {"payments_retried": retried}

    async def person_in_region(self, s: Any, principal: Principal, person_key: str) -> bool:
        """``person_key``: the person as the rows name them (shared/pii.py), not the number."""
        regions = set((await s.execute(sa.select(entitlements.c.region_code).where(
            entitlements.c.payee_person_id == person_key))).scalars())
        regions |= set((await s.execute(sa.select(disbursements.c.handling_region_code).where(
            disbursements.c.person_id == person_key))).scalars())
        regions |= set((await s.execute(sa.select(disbursements.c.region_code).where(
            disbursements.c.person_id == person_key))).scalars())
        return any(region_covers(principal.region, r) for r in regions)

    # -- reading ---------------------------------------------------------------------------------
    async def beneficiary(self, principal: Principal, person_id: str) -> dict[str, Any]:
        key = self.persons.key(person_id)
        async with self.runtime.session_factory() as s:
            if not await self.person_in_region(s, principal, key):
                raise NotFound(f"no beneficiary {person_id} in region {principal.region}")
            acct = (await s.execute(sa.select(payee_accounts).where(payee_accounts.c.person_id == key))
                    ).mappings().first()
            ents = (await s.execute(sa.select(entitlements).where(entitlements.c.payee_person_id == key)
                                    .order_by(entitlements.c.id))).mappings().all()
            death = await s.scalar(sa.select(deaths.deaths.c.date_of_death).where(deaths.deaths.c.person_id == key))
        return {
            "person_id": present_id(person_id, principal.role),
            "account": None if acct is None else {
                "account_number": present_account(acct, principal.role,
                                                  lambda token: self.accounts.open(key, token)),
                "account_name": acct["account_name"], "bank_name": acct["bank_name"],
                "updated_at": iso(acct["updated_at"]), "updated_by": acct["updated_by"]},
            "date_of_death": iso(death),
            "entitlements": [{"entitlement_id": e["id"], "program": e["program"], "status": e["status"],
                              "monthly_amount": yuan(e["monthly_fen"]), "first_month": e["first_month"].strftime("%Y-%m"),
                              "last_month": e["last_month"].strftime("%Y-%m") if e["last_month"] else None,
                              "suspended_reason": e["suspended_reason"]}
                             for e in ents if region_covers(principal.region, e["region_code"])],
        }

    async def get(self, principal: Principal, payment_id: str) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            p = (await s.execute(sa.select(payments).where(payments.c.id == payment_id))).mappings().first()
            if p is None or not region_covers(principal.region, p["region_code"]):
                raise NotFound(f"payment {payment_id} not found")
            attempts = (await s.execute(sa.select(payment_attempts).where(payment_attempts.c.payment_id == payment_id)
                                        .order_by(payment_attempts.c.attempt))).mappings().all()
            recovery = (await s.execute(sa.select(payment_recoveries).where(
                payment_recoveries.c.payment_id == payment_id))).mappings().first()
            key = p["person_id"]
            p = (await self.persons.rows_with_numbers(s, [p], "person_id"))[0]
        return payment_view(p, principal.role, attempts, recovery,
                            reveal=lambda token: self.accounts.open(key, token))

    async def list(self, principal: Principal, *, region_code: str | None, status: str | None, month: Any,
                   person_id: str | None, kind: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        q = sa.select(payments).where(in_region(payments.c.region_code, region_code or principal.region))
        if status:
            q = q.where(payments.c.status == status)
        if month is not None:
            q = q.where(payments.c.month == month)
        if person_id:  # by entitlement (indexed) or as a temporary-assistance payee (partial index)
            person_id = self.persons.key(person_id)
            q = q.where(sa.or_(
                payments.c.entitlement_id.in_(sa.select(entitlements.c.id).where(
                    entitlements.c.payee_person_id == person_id)),
                sa.and_(payments.c.kind == "linshi", payments.c.person_id == person_id)))
        if kind:
            q = q.where(payments.c.kind == kind)
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(q.order_by(payments.c.created_at, payments.c.id).limit(limit).offset(offset))
                    ).mappings().all()
            rows = await self.persons.rows_with_numbers(s, rows, "person_id")
        return [payment_view(p, principal.role) for p in rows]
