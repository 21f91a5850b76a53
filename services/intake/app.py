"""Composition root of the intake service (port 8001)."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.calendar import default_calendar
from shared.messaging.bus import Bus
from shared.runtime import ServiceRuntime, create_service_app

from services.intake import api, consumers
from services.intake.service import IntakeService
from services.intake.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parent


def create_app(settings: Settings | None = None, *, bus: Bus | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, service_dir=SERVICE_DIR, bus=bus)
    service = IntakeService(runtime, default_calendar())
    runtime.add_consumer(consumers.handlers(service))
    app = create_service_app(
        runtime, title="intake — 一门受理",
        description="One door for 12345, e救助, the service window and active discovery (I1–I5).",
        routers=[api.router])
    app.state.intake = service
    return app
