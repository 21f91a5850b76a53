"""Composition root of the payments service (port 8003)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from shared.calendar import default_calendar
from shared.messaging.bus import Bus
from shared.runtime import ServiceRuntime, create_service_app

from services.payments import api, consumers
from services.payments.bank import Bank, HttpBank
from services.payments.composition import Payments
from services.payments.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parent


def create_app(settings: Settings | None = None, *, bus: Bus | None = None, bank: Bank | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, service_dir=SERVICE_DIR, bus=bus)
    if bank is None and settings.bank_url:
        bank = HttpBank(settings.bank_url, timeout_s=settings.bank_timeout_s, retries=settings.bank_retries)
    payments = Payments(runtime, settings, default_calendar(), bank)
    runtime.add_consumer(consumers.handlers(payments), batch_handlers=consumers.batch_handlers(payments))
    app = create_service_app(
        runtime, title="payments — 备用金与发放",
        description="Township reserve funds on a double-entry ledger, three sign-offs, monthly payroll (P1–P5).",
        routers=[api.router])
    app.state.payments = payments
    app.state.clocks = payments.clocks  # kept for callers of the first version

    runtime_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with runtime_lifespan(a):
            payments.start()  # the bank sender (re-sends what a crash left `sending`) and the scans
            try:
                yield
            finally:
                await payments.stop()

    app.router.lifespan_context = lifespan
    return app
