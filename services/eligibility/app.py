"""Composition root of the eligibility service (port 8002)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from shared.aio import woken
from shared.logging import get_logger
from shared.messaging.bus import Bus
from shared.runtime import ServiceRuntime, create_service_app

from services.eligibility import api, consumers
from services.eligibility.assessments import AssessmentService
from services.eligibility.cases import CaseService
from services.eligibility.decisions import DecisionService
from services.eligibility.models import cases as cases_table
from services.eligibility.policies import PolicyService
from services.eligibility.reevaluation import ReevaluationService
from services.eligibility.settings import Settings
from services.eligibility.verification import PartnerClient, VerificationWorker

SERVICE_DIR = Path(__file__).resolve().parent
log = get_logger("eligibility")


class EligibilityRuntime(ServiceRuntime):
    """The kernel runtime plus eligibility's start-up data (national defaults, EXAMPLE
    standards when configured) and two background loops: the means-test verifier (HTTP to the
    partners, outside every transaction) and the re-evaluation job runner."""

    def __init__(self, settings: Settings, **kw: Any) -> None:
        super().__init__(settings, **kw)
        self.eligibility_settings = settings
        self.policies: PolicyService | None = None
        self.verifier: VerificationWorker | None = None
        self.reevaluator: ReevaluationService | None = None
        self.partners: PartnerClient | None = None
        self.wake_verifier = asyncio.Event()
        self.wake_reevaluator = asyncio.Event()

    async def start(self) -> None:
        await super().start()
        assert self.policies is not None
        await self.policies.load_defaults()
        if self.eligibility_settings.partner_verification_urls:
            # Partners configured since the last start: ask again for the cases still waiting.
            async with self.session_factory() as s, s.begin():
                await s.execute(sa.update(cases_table).where(cases_table.c.status == "awaiting_verification",
                                                             cases_table.c.next_check_at.is_(None))
                                .values(next_check_at=datetime.now(timezone.utc)))
        if self.verifier is not None:
            self.spawn(self._loop(self.verifier.run_once, self.wake_verifier), "eligibility-verification")
        if self.reevaluator is not None:
            self.spawn(self._loop(self.reevaluator.run_once, self.wake_reevaluator), "eligibility-reevaluation")


    async def _loop(self, step: Callable[[], Awaitable[int]], wake: asyncio.Event) -> None:
        interval = self.eligibility_settings.worker_poll_interval_s
        while True:
            try:
                busy = await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing round is logged; the loop goes on
                log.error("background_step_failed", step=getattr(step, "__qualname__", "?"),
                          error=f"{type(exc).__name__}: {exc}"[:300])
                busy = 0
            if busy:
                continue
            await woken(wake, interval)
            wake.clear()

    async def stop(self) -> None:
        await self.cancel_tasks()  # before the clients the loops use are closed
        if self.partners is not None:
            await self.partners.close()
        await super().stop()


def create_app(settings: Settings | None = None, *, bus: Bus | None = None,
               partner_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """``partner_transport`` replaces the HTTP transport to the means-test partners (tests)."""
    settings = settings or Settings()
    runtime = EligibilityRuntime(settings, service_dir=SERVICE_DIR, bus=bus)
    policies = PolicyService(runtime, settings)
    cases = CaseService(runtime, settings, policies)
    reevaluations = ReevaluationService(runtime, settings, policies, cases)
    cases.reevaluate_case = reevaluations.reevaluate_case
    partners = PartnerClient(settings, transport=partner_transport)
    runtime.policies = policies
    runtime.partners = partners
    runtime.verifier = VerificationWorker(runtime, settings, cases, partners)
    runtime.reevaluator = reevaluations
    cases.wake = runtime.wake_verifier.set
    policies.on_publish.append(runtime.wake_reevaluator.set)
    runtime.add_consumer(consumers.handlers(cases), batch_handlers=consumers.batch_handlers(cases))
    app = create_service_app(
        runtime, title="eligibility — 低保 / 特困 / 临时救助",
        description="Versioned per-region policies, the public calculator, means-test verification (经济状况核对), "
                    "explained and replayable decisions, re-evaluation (D1–D6, T1–T3, L1–L5).",
        routers=[api.router], public_routes=api.PUBLIC_ROUTES)
    app.state.cases = cases
    app.state.policies = policies
    app.state.assessments = AssessmentService(policies)
    app.state.decisions = DecisionService(runtime, policies, cases.persons)
    app.state.reevaluations = reevaluations
    return app
