"""Composition root of the payments service (port 8003)."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.calendar import default_calendar
from shared.messaging.bus import Bus
from shared.runtime import ServiceRuntime, create_service_app

from services.payments import api, consumers
from services.payments.clocks import PaymentClockService
from services.payments.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parent


def create_app(settings: Settings | None = None, *, bus: Bus | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, service_dir=SERVICE_DIR, bus=bus)
    clocks = PaymentClockService(runtime, default_calendar())
    runtime.add_consumer(consumers.handlers(clocks))
    app = create_service_app(
        runtime, title="payments — 备用金与发放",
        description="Township reserve funds on a double-entry ledger, three sign-offs, monthly payroll (P1–P5).",
        routers=[api.router])
    app.state.clocks = clocks
    return app
