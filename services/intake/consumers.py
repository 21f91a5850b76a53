"""Intake's event entrypoints: the timeline follows the case through the other services."""
from __future__ import annotations

from shared.events.eligibility import CaseOpened, DecisionMade
from shared.events.payments import DisbursementPaid
from shared.messaging.consumer import BatchEventHandler, EventHandler

from services.intake.service import IntakeService


def handlers(service: IntakeService) -> dict[str, EventHandler]:
    return {  # type: ignore[dict-item]
        CaseOpened.TYPE: service.on_case_opened,
        DecisionMade.TYPE: service.on_decision_made,
        DisbursementPaid.TYPE: service.on_disbursement_paid,
    }


def batch_handlers(service: IntakeService) -> dict[str, BatchEventHandler]:
    """What a fetched batch stores set-based (every application produces one of each)."""
    return {  # type: ignore[dict-item]
        CaseOpened.TYPE: service.on_cases_opened,
        DecisionMade.TYPE: service.on_decisions_made,
    }
