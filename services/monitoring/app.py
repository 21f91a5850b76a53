"""Composition root of the monitoring service (port 8004)."""
from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

from fastapi import FastAPI
from pydantic import TypeAdapter

from shared.calendar import WorkingCalendar, default_calendar, to_shanghai_date
from shared.events.monitoring import PartnerEvent
from shared.logging import get_logger
from shared.messaging.bus import Bus
from shared.pii import PersonVault
from shared.runtime import ServiceRuntime, create_service_app

from services.monitoring import api, consumers, dashboard
from services.monitoring.comparison import ComparisonEngine
from services.monitoring.domain.reference import load_reference_lines
from services.monitoring.domain.rules import load_rules
from services.monitoring.files import ComparisonFileService
from services.monitoring.indicators import IndicatorService
from services.monitoring.ops import OpsService
from services.monitoring.partners import PartnerDirectory, PartnerService
from services.monitoring.register import RegisterService
from services.monitoring.reports import ReportService
from services.monitoring.models import person_vault
from services.monitoring.settings import Settings
from services.monitoring.warnings import WarningService

SERVICE_DIR = Path(__file__).resolve().parent
log = get_logger("monitoring")


class MonitoringRuntime(ServiceRuntime):
    """The kernel runtime plus the periodic escalation scan (限时核查: overdue warnings go to the
    county); the same scan is callable by hand with a given day (POST /v1/warnings/escalations)."""

    def __init__(self, settings: Settings, **kw: Any) -> None:
        super().__init__(settings, **kw)
        self.scan_interval_s = settings.escalation_scan_interval_s
        self.scan: Callable[[], Awaitable[Any]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        if self.scan is not None and self.scan_interval_s > 0:
            self._task = asyncio.create_task(self._periodic(), name="monitoring-escalations")

    async def _periodic(self) -> None:
        assert self.scan is not None
        while True:
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next round tries again; the endpoint still works
                log.warning("escalation_scan_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self.scan_interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        await super().stop()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def create_app(settings: Settings | None = None, *, bus: Bus | None = None,
               clock: Callable[[], datetime] | None = None, calendar: WorkingCalendar | None = None) -> FastAPI:
    """``clock`` (an aware ``datetime`` factory) and ``calendar`` are injectable for tests."""
    settings = settings or Settings()
    clock = clock or _utcnow
    calendar = calendar or default_calendar()
    runtime = MonitoringRuntime(settings, service_dir=SERVICE_DIR, bus=bus)
    rules = load_rules()
    reference_lines = load_reference_lines()
    directory = PartnerDirectory.load(settings.partner_keys, settings.partner_types)
    persons = PersonVault(settings.data_encryption_key, person_vault)  # rows hold person keys (shared/pii.py)
    engine = ComparisonEngine(rules, calendar, medical_threshold=settings.medical_expense_threshold,
                              service=settings.service_name, persons=persons)
    indicators = IndicatorService(runtime, clock)
    register = RegisterService(runtime, persons, clock=clock, marginal_multiplier=settings.marginal_multiplier)
    partners = PartnerService(runtime, engine, directory, reference_lines,
                              max_age_s=settings.partner_signature_max_age_s, clock=clock)
    files = ComparisonFileService(runtime, engine, partners, directory, reference_lines, clock=clock,
                                  batch_rows=settings.comparison_batch_rows,
                                  max_errors=settings.comparison_max_errors_stored,
                                  max_line_bytes=settings.comparison_max_line_bytes,
                                  max_file_bytes=settings.comparison_max_file_bytes,
                                  columnar=settings.comparison_columnar, spool_dir=settings.comparison_spool_dir,
                                  duckdb_threads=settings.comparison_duckdb_threads,
                                  duckdb_memory=settings.comparison_duckdb_memory,
                                  medical_threshold=settings.medical_expense_threshold)
    runtime.add_consumer(consumers.handlers(indicators, register, partners),
                         batch_handlers=consumers.batch_handlers(indicators, register))
    app = create_service_app(
        runtime, title="monitoring — 低收入人口动态监测",
        description="The 7-category register, partner data, graded warnings, indicators and reports (M1–M8).",
        routers=[api.router, dashboard.router])
    app.state.indicators = indicators
    app.state.register = register
    app.state.partners = partners
    app.state.files = files
    app.state.warnings = warnings_service = WarningService(runtime, rules, persons, clock=clock)
    runtime.scan = lambda: warnings_service.escalate_overdue(to_shanghai_date(clock()), actor="periodic")
    app.state.reports = ReportService(indicators, clock)
    app.state.ops = OpsService(runtime, clock)
    app.state.clock = clock
    _document_partner_event(app)
    return app


def _document_partner_event(app: FastAPI) -> None:
    """Put the partner event union (M2) into the OpenAPI components for POST /v1/partner-events."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base()
        event = TypeAdapter(PartnerEvent).json_schema(ref_template="#/components/schemas/{model}")
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps.update(event.pop("$defs", {}))
        comps["PartnerEvent"] = event
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
