"""Eligibility's event entrypoints."""
from __future__ import annotations

from shared.events.intake import ApplicationSubmitted
from shared.messaging.consumer import BatchEventHandler, EventHandler

from services.eligibility.cases import CaseService


def handlers(cases: CaseService) -> dict[str, EventHandler]:
    return {ApplicationSubmitted.TYPE: cases.on_application_submitted}  # type: ignore[dict-item]


def batch_handlers(cases: CaseService) -> dict[str, BatchEventHandler]:
    """What a fetched batch stores set-based (the rest is handled event by event in its transaction)."""
    return {ApplicationSubmitted.TYPE: cases.on_applications_submitted}  # type: ignore[dict-item]
