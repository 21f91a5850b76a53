"""Helpers for the eligibility service tests: a fast-settings app, a partner test server
(httpx.MockTransport), applications delivered as intake events, and outbox readers."""
from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import httpx
import sqlalchemy as sa

from services.eligibility.app import create_app
from services.eligibility.models import cases
from services.eligibility.settings import Settings
from shared.events.base import REGISTRY
from shared.events.intake import ApplicationSubmitted
from shared.messaging.bus import IncomingMessage
from shared.messaging.envelope import Envelope
from shared.messaging.inprocess import InProcessBus
from shared.messaging.tables import outbox
from tests.support import COUNTY, TOWNSHIP, make_id

SOURCES = ("hukou", "social_insurance", "vehicles", "real_estate", "housing_fund", "bank_deposits")
ALL_URLS = {s: f"http://partners.test/{s}" for s in SOURCES}
OTHER_TOWNSHIP = "522702001000"

# The full parameter set of API.md's POST /v1/policies example (standards 800/600).
API_PARAMS: dict[str, Any] = {
    "dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00",
    "tier_rate_severe": "0.30", "tier_rate_elderly_or_student": "0.20",
    "tier_rate_family": "0.15", "tier_flat_mild_disability": "70.00",
    "elderly_age": 60, "marginal_multiplier": "1.5", "gradual_exit_months": 6,
    "tekun_multiplier": "1.3", "tekun_minor_age": 18,
    "tekun_care_fee_full_self_care": "0.00", "tekun_care_fee_partial": "200.00",
    "tekun_care_fee_none": "500.00",
    "linshi_township_limit": "1500.00", "linshi_max_months": 6,
    "approval_delegated_to_township": True}


@dataclass
class Partners:
    """The partner departments' test server: per source an answer, a status code, or 'timeout'."""
    answers: dict[str, Any] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        source = request.url.path.rsplit("/", 1)[-1]
        body = json.loads(request.content)
        self.calls.append(body)
        plan = self.answers.get(source, {"assets_within_limits": True, "monthly_incomes": {},
                                         "summary": f"{source}: nothing found"})
        if plan == "timeout":
            await asyncio.sleep(30)
        if isinstance(plan, int):
            return httpx.Response(plan, json={"error": "partner failure"})
        if callable(plan):
            plan = plan(body)
        return httpx.Response(200, json=plan)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def settings(database_url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(database_url=database_url, environment="test", load_example_standards=False,
                                worker_poll_interval_s=0.05, outbox_poll_interval_s=0.05,
                                consumer_retry_backoff_s=0.01, partner_timeout_s=0.3, partner_retries=0,
                                partner_retry_backoff_s=0.01, verification_retry_s=3600.0,
                                public_rate_limit_per_s=10_000.0, public_rate_limit_burst=10_000)
    base.update(kw)
    return Settings(**base)


def app_for(database_url: str, partners: Partners | None = None, **kw: Any):
    return create_app(settings(database_url, **kw), bus=InProcessBus(),
                      partner_transport=partners.transport() if partners else None)


def member(born: date, seq: int, income: str = "0.00", region6: str = "522701", **kw: Any) -> dict[str, Any]:
    return {"person_id": make_id(born, seq, region6), "birth_date": born.isoformat(), "monthly_income": income, **kw}


def submitted(members: list[dict[str, Any]], *, program: str = "dibao", region: str = TOWNSHIP,
              area: str = "urban", hardship: dict[str, Any] | None = None, app_id: str | None = None,
              **household: Any) -> ApplicationSubmitted:
    now = datetime.now(timezone.utc)
    return ApplicationSubmitted(
        application_id=app_id or str(uuid.uuid4()), channel="window", program=program, region_code=region,
        handling_region_code=region, area=area, applicant_person_id=members[0]["person_id"],
        household={"members": members, **household}, hardship=hardship, documents_complete=True,
        received_at=now, due_by=now.date())


def message(data: ApplicationSubmitted, event_id: str | None = None) -> IncomingMessage:
    env = Envelope(type=data.TYPE, source="intake", subject=data.application_id, data=data.model_dump(mode="json"))
    if event_id:
        env = env.model_copy(update={"id": event_id})
    return IncomingMessage(topic=env.topic, key=env.subject, value=env.to_bytes(), headers={})


async def deliver(app: Any, data: ApplicationSubmitted, event_id: str | None = None) -> str:
    """Deliver intake's event to eligibility's consumer; the case id."""
    await app.state.runtime.consumers[0].handle(message(data, event_id))
    async with app.state.runtime.session_factory() as s:
        return await s.scalar(sa.select(cases.c.id).where(cases.c.application_id == data.application_id))


async def events(app: Any, event_type: str) -> list[Any]:
    """Typed payloads of the outbox rows of one event type, in order."""
    async with app.state.runtime.session_factory() as s:
        rows = (await s.execute(sa.select(outbox.c.payload).where(outbox.c.type == event_type)
                                .order_by(outbox.c.seq))).scalars().all()
    out = []
    for raw in rows:
        env = Envelope.from_bytes(raw)
        out.append(REGISTRY[env.type].model_validate(env.data))
    return out


async def count(app: Any, table: sa.Table) -> int:
    async with app.state.runtime.session_factory() as s:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def wait_status(client: httpx.AsyncClient, case_id: str, *statuses: str, headers: dict[str, str],
                      timeout: float = 10.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    body: dict[str, Any] = {}
    while loop.time() < deadline:
        body = (await client.get(f"/v1/cases/{case_id}", headers=headers)).json()
        if body.get("status") in statuses:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"case {case_id} not in {statuses}: {body}")


async def publish(client: httpx.AsyncClient, region: str, effective: str, params: dict[str, Any],
                  headers: dict[str, str]) -> dict[str, Any]:
    r = await client.post("/v1/policies", json={"region_code": region, "effective_from": effective, "params": params},
                          headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def wait_job(client: httpx.AsyncClient, job_id: str, headers: dict[str, str], timeout: float = 20.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    body: dict[str, Any] = {}
    while loop.time() < deadline:
        body = (await client.get(f"/v1/reevaluations/{job_id}", headers=headers)).json()
        if body.get("status") in ("done", "failed"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {body}")


__all__ = ["API_PARAMS", "ALL_URLS", "COUNTY", "OTHER_TOWNSHIP", "Partners", "SOURCES", "TOWNSHIP", "app_for",
           "count", "deliver", "events", "member", "message", "publish", "settings", "submitted", "wait_job",
           "wait_status"]
