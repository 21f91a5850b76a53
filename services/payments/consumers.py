"""Payments' event entrypoints (thin; the inbox makes each one exactly-once)."""
from __future__ import annotations

from shared.events.eligibility import BenefitChanged, CaseOpened, DecisionMade
from shared.events.monitoring import PersonDied
from shared.logging import correlation_id_var
from shared.messaging.consumer import BatchEventHandler, EventHandler
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork

from services.payments import deaths
from services.payments.composition import Payments


def handlers(app: Payments) -> dict[str, EventHandler]:
    async def decision_made(tx: UnitOfWork, env: Envelope, data: DecisionMade) -> None:
        if data.program == "linshi":
            await app.disbursements.on_decision(tx, env, data)  # L4, P2, P3
        else:
            await app.payroll.on_decision(tx, env, data)  # P5

    async def person_died(tx: UnitOfWork, env: Envelope, data: PersonDied) -> None:
        await deaths.on_person_died(tx, env, data, app.payouts.persons)

    return {  # type: ignore[dict-item]
        CaseOpened.TYPE: app.clocks.on_case_opened,
        DecisionMade.TYPE: decision_made,
        BenefitChanged.TYPE: app.payroll.on_benefit_changed,
        PersonDied.TYPE: person_died,
    }


def batch_handlers(app: Payments) -> dict[str, BatchEventHandler]:
    """What a fetched batch stores set-based (the rest is handled event by event in its transaction)."""
    async def cases_opened(tx: UnitOfWork, events: list[tuple[Envelope, CaseOpened]]) -> None:
        await app.clocks.on_cases_opened(tx, [data for _, data in events])

    async def decisions_made(tx: UnitOfWork, events: list[tuple[Envelope, DecisionMade]]) -> None:
        # A case has one programme, and the two paths share no rows (temporary assistance: clocks,
        # disbursements and their stages; the others: entitlements and payroll payments), so
        # taking the temporary-assistance run first keeps every case's events in order.
        await app.disbursements.on_decisions(tx, [data for _, data in events if data.program == "linshi"])
        for env, data in events:
            if data.program != "linshi":
                token = correlation_id_var.set(env.correlation_id)  # as the consumer does per event
                try:
                    await app.payroll.on_decision(tx, env, data)
                finally:
                    correlation_id_var.reset(token)

    return {CaseOpened.TYPE: cases_opened, DecisionMade.TYPE: decisions_made}  # type: ignore[dict-item]
