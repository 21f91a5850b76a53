"""Composition root of the monitoring service (port 8004)."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.messaging.bus import Bus
from shared.runtime import ServiceRuntime, create_service_app

from services.monitoring import api, consumers
from services.monitoring.indicators import IndicatorService
from services.monitoring.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parent


def create_app(settings: Settings | None = None, *, bus: Bus | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, service_dir=SERVICE_DIR, bus=bus)
    indicators = IndicatorService(runtime)
    runtime.add_consumer(consumers.handlers(indicators))
    app = create_service_app(
        runtime, title="monitoring — 低收入人口动态监测",
        description="The 7-category register, partner data, graded warnings, indicators and reports (M1–M8).",
        routers=[api.router])
    app.state.indicators = indicators
    return app
