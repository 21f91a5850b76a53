"""Payments' event entrypoints (thin; the inbox makes each one exactly-once)."""
from __future__ import annotations

from shared.events.eligibility import BenefitChanged, CaseOpened, DecisionMade
from shared.events.monitoring import PersonDied
from shared.messaging.consumer import EventHandler
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
