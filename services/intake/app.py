"""Composition root of the intake service (port 8001)."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Coroutine

import httpx
from fastapi import FastAPI
from starlette.routing import Route

from shared.calendar import default_calendar
from shared.logging import get_logger
from shared.messaging.bus import Bus
from shared.openapi import api_routes, route_roles
from shared.runtime import ServiceRuntime, create_service_app

from services.intake import api, consumers
from services.intake.channel_feedback import FeedbackSender
from services.intake.clocks import DeadlineScanner
from services.intake.fastpath import PgApplicationWriter
from services.intake.hotline import HotlineService
from services.intake.service import IntakeService
from services.intake.settings import Settings
from services.intake.zero_reports import ZeroReportService

SERVICE_DIR = Path(__file__).resolve().parent
log = get_logger("intake")


class IntakeRuntime(ServiceRuntime):
    """The kernel runtime plus intake's background tasks (the 12345 callback sender and the
    deadline scan) and intake's gauges refreshed on every /metrics scrape."""

    def __init__(self, settings: Settings, **kw: Any) -> None:
        super().__init__(settings, **kw)
        self.intake_settings = settings
        self.feedback: FeedbackSender | None = None
        self.scanner: DeadlineScanner | None = None
        self.hotline: HotlineService | None = None
        self.writer: PgApplicationWriter | None = None

    async def start(self) -> None:
        await super().start()
        if self.writer is not None:
            await self.writer.start()
        if self.feedback is not None:
            self.spawn(self.feedback.run(), "intake-feedback")
        interval = self.intake_settings.deadline_scan_interval_s
        if self.scanner is not None and interval > 0:
            self.spawn(self.scanner.run(interval), "intake-deadlines")

    async def stop(self) -> None:
        await self.cancel_tasks()  # before the clients the loops use are closed
        if self.feedback is not None:
            await self.feedback.close()
        if self.writer is not None:
            await self.writer.stop()
        await super().stop()

    async def refresh_metrics(self) -> None:
        await super().refresh_metrics()
        timeout = self.intake_settings.metrics_refresh_timeout_s
        for part in (self.feedback, self.scanner, self.hotline):
            if part is not None:
                try:
                    await asyncio.wait_for(part.refresh_gauge(), timeout=timeout)
                except Exception as exc:  # a slow database must not break the scrape
                    log.warning("metrics_refresh_failed", part=type(part).__name__, error=str(exc)[:200])


def _match_api_first(app: FastAPI) -> None:
    """Try intake's /v1 routes before the docs and operations routes: no path overlaps, and
    every request to the hot path skips a dozen route checks."""
    routes = app.router.routes
    ours = [r for r in routes if getattr(r, "original_router", None) is api.router]
    if len(ours) == 1:
        routes.remove(ours[0])
        routes.insert(0, ours[0])


def _serve_submissions_directly(app: FastAPI) -> None:
    """POST /v1/applications by ``api.submit_application_direct``, ahead of the documented route
    (which stays the contract: OpenAPI, the roles the authorization matrix reads)."""
    documented = next(r for m, p, r in api_routes(app) if (m, p) == ("POST", "/v1/applications"))
    if route_roles(documented) != api.FILER_SET:  # one list of roles for both, checked at start-up
        raise RuntimeError("POST /v1/applications: the direct route's roles differ from the documented route's")
    app.router.routes.insert(0, Route("/v1/applications", api.submit_application_direct, methods=["POST"],
                                      include_in_schema=False))


def create_app(settings: Settings | None = None, *, bus: Bus | None = None,
               hotline_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """``hotline_transport`` replaces the HTTP transport of the 12345 callback (tests)."""
    settings = settings or Settings()
    runtime = IntakeRuntime(settings, service_dir=SERVICE_DIR, bus=bus)
    feedback = FeedbackSender(runtime, settings, transport=hotline_transport)
    if settings.database_url.startswith("postgresql") and settings.application_fast_path:
        runtime.writer = PgApplicationWriter(settings.database_url, pool_size=settings.application_fast_path_pool_size,
                                            writers=settings.application_fast_path_writers)
    service = IntakeService(runtime, default_calendar(), feedback, runtime.writer)
    runtime.feedback = feedback
    runtime.scanner = DeadlineScanner(service)
    runtime.hotline = HotlineService(service)
    runtime.add_consumer(consumers.handlers(service), batch_handlers=consumers.batch_handlers(service))
    app = create_service_app(
        runtime, title="intake — 一门受理",
        description="One door for 12345, e救助, the service window and active discovery (I1–I5): "
                    "一次性告知, 首问负责, 分办/转办, 反馈, 限时办理, 零报告.",
        # Applications can be filed by anyone with an applicant token: limited per client.
        routers=[api.router], public_routes={("POST", "/v1/applications")})
    _match_api_first(app)
    if settings.application_direct_route:
        _serve_submissions_directly(app)
    app.state.intake = service
    app.state.feedback = feedback
    app.state.deadlines = runtime.scanner
    app.state.hotline = runtime.hotline
    app.state.zero_reports = ZeroReportService(service)
    return app
