"""Helpers for intake's tests: an intake app on the in-process bus, events published on that
bus as other services would, and row counts straight from intake's database."""
from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from shared.events.base import EventData
from shared.events.eligibility import CaseOpened, DecisionMade
from shared.events.payments import DisbursementPaid
from shared.messaging.bus import OutgoingMessage
from shared.messaging.envelope import Envelope
from shared.messaging.inprocess import InProcessBus
from shared.messaging.tables import outbox

from services.intake.app import create_app
from services.intake.settings import Settings
from tests.support import running

SHANGHAI = timezone(timedelta(hours=8))


def at(day: str, hour: int = 10) -> datetime:
    """A moment on ``day`` (Asia/Shanghai office hours), as the service's clock returns it."""
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=SHANGHAI).astimezone(timezone.utc)


@asynccontextmanager
async def intake(database_url: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 **settings: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings.setdefault("deadline_scan_interval_s", 0)
    settings.setdefault("gc_freeze_on_start", False)
    app = create_app(Settings(database_url=database_url, **settings), bus=InProcessBus(),
                     hotline_transport=transport)
    async with running(app) as client:
        yield app, client


def bus_of(app: FastAPI) -> InProcessBus:
    return app.state.runtime.bus


async def publish(app: FastAPI, event: EventData, subject: str, *, source: str = "test",
                  event_id: str | None = None) -> Envelope:
    """Deliver ``event`` as its producing service would (through the bus; returns after intake stored it)."""
    env = Envelope(type=event.TYPE, version=event.VERSION, source=source, subject=subject,
                   data=event.model_dump(mode="json"), **({"id": event_id} if event_id else {}))
    await bus_of(app).publish([OutgoingMessage(topic=env.topic, key=subject, value=env.to_bytes())])
    return env


def case_opened(app_out: dict[str, Any], case_id: str | None = None) -> CaseOpened:
    now = datetime.now(timezone.utc)
    return CaseOpened(case_id=case_id or str(uuid.uuid4()), application_id=app_out["application_id"],
                      channel=app_out["channel"], program=app_out["program"], region_code=app_out["region_code"],
                      handling_region_code=app_out["handling_region_code"], applicant_person_id="x" * 18,
                      household_size=1, received_at=now, opened_at=now)


def decision(app_out: dict[str, Any], outcome: str = "approved", *, monthly: str | None = "500.00",
             one_time: str | None = None, department: str | None = None, case_id: str | None = None,
             staged: list[str] | None = None) -> DecisionMade:
    now = datetime.now(timezone.utc)
    return DecisionMade(
        decision_id=str(uuid.uuid4()), case_id=case_id or app_out.get("case_id") or str(uuid.uuid4()),
        application_id=app_out["application_id"], program=app_out["program"], channel=app_out["channel"],
        region_code=app_out["region_code"], handling_region_code=app_out["handling_region_code"],
        applicant_person_id="x" * 18, covered_person_ids=[], outcome=outcome,
        monthly_amount=Decimal(monthly) if monthly else None, one_time_amount=Decimal(one_time) if one_time else None,
        approval_level="township", effective_from=date(2026, 11, 1), policy_version="p1", received_at=now,
        decided_at=now, decided_by="clerk-1", transfer_department=department,
        staged_payments=[Decimal(s) for s in staged] if staged else None, reasons=["D1", "D2"])


def paid(app_out: dict[str, Any], amount: str = "500.00", case_id: str | None = None) -> DisbursementPaid:
    now = datetime.now(timezone.utc)
    return DisbursementPaid(
        disbursement_id=str(uuid.uuid4()), case_id=case_id or app_out.get("case_id") or "c",
        application_id=app_out["application_id"], program=app_out["program"], region_code=app_out["region_code"],
        handling_region_code=app_out["handling_region_code"], person_id="x" * 18, amount=Decimal(amount),
        funded_from="township_reserve", accepted_at=now, paid_at=now, pay_by=date(2026, 12, 1),
        within_time_limit=True)


async def count(app: FastAPI, table: sa.Table, *where: Any) -> int:
    async with app.state.runtime.session_factory() as s:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(table).where(*where)) or 0)


async def events(app: FastAPI, event_type: str | None = None) -> list[dict[str, Any]]:
    """Envelopes intake wrote to its outbox, oldest first."""
    import orjson
    q = sa.select(outbox.c.payload).order_by(outbox.c.seq)
    if event_type:
        q = q.where(outbox.c.type == event_type)
    async with app.state.runtime.session_factory() as s:
        return [orjson.loads(p) for p in (await s.execute(q)).scalars()]


def steps(app_out: dict[str, Any]) -> list[str]:
    return [s["step"] for s in app_out["timeline"]]


@pytest.fixture
def pg_url(pg_databases: Any) -> str:
    return pg_databases.new("intake")
