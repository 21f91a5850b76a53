"""Composition root of the eligibility service (port 8002)."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.messaging.bus import Bus
from shared.runtime import ServiceRuntime, create_service_app

from services.eligibility import api, consumers
from services.eligibility.cases import CaseService
from services.eligibility.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parent


def create_app(settings: Settings | None = None, *, bus: Bus | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, service_dir=SERVICE_DIR, bus=bus)
    cases = CaseService(runtime)
    runtime.add_consumer(consumers.handlers(cases))
    app = create_service_app(
        runtime, title="eligibility — 低保 / 特困 / 临时救助",
        description="Versioned per-region policies, means-test verification and explained decisions (D1–D6, T1–T3, L1–L5).",
        routers=[api.router])
    app.state.cases = cases
    return app
