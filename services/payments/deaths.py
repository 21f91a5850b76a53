"""P5 / M6 (防止"死亡保"): a death stops the person's payments at once; anything paid for a
month that starts after the death, or a one-off paid after it, is flagged for recovery with a
receivable in the ledger and a ``payments.payment.recovery_flagged`` event.

Whose death stops what: the payee's death suspends every benefit paid to them; a covered
person's death suspends a benefit that covers only them. When one member of a larger household
dies, the household's benefit is eligibility's to recompute (``benefit.changed``).
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import county_of
from shared.calendar import to_shanghai_date
from shared.db import insert_ignore
from shared.events.monitoring import PersonDied
from shared.events.payments import PaymentFlaggedForRecovery
from shared.logging import get_logger
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork
from shared.money import from_fen
from shared.pii import PersonVault

from services.payments import ledger, payment_ops
from services.payments.domain import ledger as dl
from services.payments.domain import payments as ps
from services.payments.domain.periods import month_of, paid_after_death
from services.payments.models import (
    deaths, disbursements, entitlement_persons, entitlements, payment_recoveries, payments,
)
from services.payments.storage import lock_rows, utcnow

log = get_logger("payments.deaths")
ACTOR = "system:death-register"


async def death_date_for(session: AsyncSession, p: Mapping[str, Any]) -> date | None:
    """The death that makes this payment wrong, if any (the payee's, or the covered person's)."""
    if p.get("entitlement_id"):
        died = await session.scalar(sa.select(entitlements.c.died_on).where(entitlements.c.id == p["entitlement_id"]))
        if died is not None:
            return died
    return await session.scalar(sa.select(deaths.c.date_of_death).where(deaths.c.person_id == p["person_id"]))


async def flag_if_after_death(tx: UnitOfWork, persons: PersonVault, p: Mapping[str, Any], *, paid_on: date) -> bool:
    died = await death_date_for(tx.session, p)
    if died is None or not paid_after_death(month=p.get("month"), paid_on=paid_on, date_of_death=died):
        return False
    return await flag(tx, persons, p, paid_on=paid_on, date_of_death=died)


async def flag(tx: UnitOfWork, persons: PersonVault, p: Mapping[str, Any], *, paid_on: date,
               date_of_death: date) -> bool:
    fresh = await insert_ignore(tx.session, payment_recoveries, {
        "payment_id": p["id"], "person_id": p["person_id"], "amount_fen": int(p["amount_fen"]),
        "paid_on": paid_on, "date_of_death": date_of_death, "status": "open", "flagged_at": utcnow()})
    if not fresh:
        return False
    county = county_of(p["region_code"])
    posted = await ledger.post(tx.session, [dl.debit(dl.recovery_receivable(p["person_id"]), int(p["amount_fen"]), p["id"]),
                                            dl.credit(dl.recoveries(county), int(p["amount_fen"]), p["id"])],
                               kind="recovery_flagged", actor=ACTOR, region_code=county, ref_type="payment",
                               ref_id=p["id"], memo=f"paid after death on {date_of_death}")
    await tx.session.execute(payment_recoveries.update().where(payment_recoveries.c.payment_id == p["id"])
                             .values(ledger_tx_id=posted.transaction_id))
    # the event carries the number (monitoring and partners need it): from the vault, in memory
    person = await persons.reveal_one(tx.session, p["person_id"])
    tx.emit(PaymentFlaggedForRecovery(payment_id=p["id"], person_id=person,
                                      amount=from_fen(int(p["amount_fen"])), paid_on=paid_on,
                                      date_of_death=date_of_death), subject=person)
    return True


async def on_person_died(tx: UnitOfWork, env: Envelope, data: PersonDied, persons: PersonVault) -> None:
    s = tx.session
    # rows hold person keys: the death of somebody payments never paid is kept by key only
    person, died = persons.key(data.person_id), data.date_of_death
    if not await insert_ignore(s, deaths, {"person_id": person, "date_of_death": died, "source": data.source[:64],
                                           "reported_at": data.reported_at}):
        known = await s.scalar(sa.select(deaths.c.date_of_death).where(deaths.c.person_id == person))
        if known != died:
            log.warning("death_date_differs", event_id=env.id, kept=str(known), reported=str(died))
        died = known or died
    # monthly benefits: paid to them, or covering only them
    covered = sa.select(entitlement_persons.c.entitlement_id).where(entitlement_persons.c.person_id == person)
    ents = (await s.execute(sa.select(entitlements).where(
        sa.or_(entitlements.c.payee_person_id == person, entitlements.c.id.in_(covered))))).mappings().all()
    for e in ents:
        if e["payee_person_id"] != person and e["covered_count"] > 1:
            continue
        last = month_of(died)
        await s.execute(entitlements.update().where(entitlements.c.id == e["id"]).values(
            status="suspended", suspended_reason="death", died_on=died, updated_at=utcnow(),
            last_month=min(last, e["last_month"]) if e["last_month"] else last))
        rows = (await s.execute(sa.select(payments).where(payments.c.entitlement_id == e["id"], payments.c.month > died))
                ).mappings().all()
        await _stop_or_flag(tx, persons, rows, died)
    # temporary assistance paid to them: nothing more goes out (disbursement rows locked first,
    # in the order the sign-offs take them, so a racing last sign-off waits instead of deadlocking)
    ids = list((await s.execute(sa.select(disbursements.c.id).where(disbursements.c.person_id == person))).scalars())
    await lock_rows(s, disbursements, disbursements.c.id, ids)
    rows = (await s.execute(sa.select(payments).where(payments.c.kind == "linshi", payments.c.person_id == person))
            ).mappings().all()
    await _stop_or_flag(tx, persons, rows, died)
    for d in sorted({r["disbursement_id"] for r in rows}):
        await payment_ops.refresh_disbursement(s, d)


async def _stop_or_flag(tx: UnitOfWork, persons: PersonVault, rows: Any, died: date) -> None:
    for p in rows:
        if p["status"] in ps.CANCELLABLE:
            await payment_ops.cancel(tx.session, p, actor=ACTOR, reason=f"death on {died}")
        elif p["status"] == ps.PAID and p["paid_at"] is not None:
            paid_on = to_shanghai_date(p["paid_at"])
            if paid_after_death(month=p["month"], paid_on=paid_on, date_of_death=died):
                await flag(tx, persons, p, paid_on=paid_on, date_of_death=died)
        # sending/unknown: the bank may pay it; the answer is checked against the death then
