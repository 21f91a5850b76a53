"""Monitoring's event entrypoints."""
from __future__ import annotations

from shared.events.eligibility import CaseOpened
from shared.messaging.consumer import EventHandler

from services.monitoring.indicators import IndicatorService


def handlers(indicators: IndicatorService) -> dict[str, EventHandler]:
    return {CaseOpened.TYPE: indicators.on_case_opened}  # type: ignore[dict-item]
