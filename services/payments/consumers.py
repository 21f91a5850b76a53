"""Payments' event entrypoints."""
from __future__ import annotations

from shared.events.eligibility import CaseOpened
from shared.messaging.consumer import EventHandler

from services.payments.clocks import PaymentClockService


def handlers(clocks: PaymentClockService) -> dict[str, EventHandler]:
    return {CaseOpened.TYPE: clocks.on_case_opened}  # type: ignore[dict-item]
