"""Intake's event entrypoints: the timeline follows the case through the other services."""
from __future__ import annotations

from shared.events.eligibility import CaseOpened
from shared.messaging.consumer import EventHandler

from services.intake.service import IntakeService


def handlers(service: IntakeService) -> dict[str, EventHandler]:
    return {CaseOpened.TYPE: service.on_case_opened}  # type: ignore[dict-item]
