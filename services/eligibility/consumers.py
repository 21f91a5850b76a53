"""Eligibility's event entrypoints."""
from __future__ import annotations

from shared.events.intake import ApplicationSubmitted
from shared.messaging.consumer import EventHandler

from services.eligibility.cases import CaseService


def handlers(cases: CaseService) -> dict[str, EventHandler]:
    return {ApplicationSubmitted.TYPE: cases.on_application_submitted}  # type: ignore[dict-item]
