"""Helpers for monitoring's tests: a settable clock, seeded events, signed partner requests."""
from __future__ import annotations

import json
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, AsyncIterator

import httpx

from shared.events.base import EventData
from shared.events.eligibility import BenefitChanged, DecisionMade
from shared.messaging.bus import IncomingMessage, OutgoingMessage
from shared.messaging.envelope import Envelope
from shared.messaging.inprocess import InProcessBus

from services.monitoring.app import create_app
from services.monitoring.domain.signing import sign
from services.monitoring.settings import Settings
from tests.support import make_id, running

COUNTY = "522701000000"
TOWNSHIP = "522701001000"
VILLAGE = "522701001001"
OTHER_VILLAGE = "522701002003"
SHANGHAI = timezone(timedelta(hours=8))
PARTNER_KEYS = {p: f"{p}-signing-key-0123456789abcdef0123" for p in (
    "civil_registration", "medical_insurance", "human_resources", "disabled_persons_federation", "education",
    "rural_revitalization")}


class Clock:
    """The business clock of the app under test (deadlines, freshness of signed requests)."""

    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now

    def set(self, at: datetime) -> None:
        self.now = at


def shanghai(y: int, m: int, d: int, hh: int = 10) -> datetime:
    return datetime(y, m, d, hh, 0, tzinfo=SHANGHAI)


def person(seq: int, birth: date = date(1960, 5, 1), region6: str = "522701") -> str:
    return make_id(birth, seq, region6)


@dataclass
class Harness:
    client: httpx.AsyncClient
    bus: InProcessBus
    clock: Clock
    app: Any
    seen: list[Envelope] = field(default_factory=list)

    async def publish(self, event: EventData, subject: str, source: str = "eligibility") -> Envelope:
        env = Envelope(type=event.TYPE, version=event.VERSION, source=source, subject=subject,
                       data=event.model_dump(mode="json"))
        await self.bus.publish([OutgoingMessage(topic=env.topic, key=subject, value=env.to_bytes())])
        return env

    async def partner_post(self, partner: str, body: Any, *, nonce: str | None = None, ts: int | None = None,
                           key: str | None = None, sub: str | None = None, tamper: bytes | None = None) -> httpx.Response:
        from tests.support import auth
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        ts_s = str(int(self.clock().timestamp()) if ts is None else ts)
        nonce = nonce or uuid.uuid4().hex
        sig = sign(key or PARTNER_KEYS.get(partner, "x" * 32), ts_s, nonce, raw)
        headers = auth("partner_system", sub=sub or partner) | {
            "X-Partner-Id": partner, "X-Timestamp": ts_s, "X-Nonce": nonce, "X-Signature": sig,
            "Content-Type": "application/json"}
        return await self.client.post("/v1/partner-events", content=tamper if tamper is not None else raw,
                                      headers=headers)

    def events(self, type_: str) -> list[Envelope]:
        return [e for e in self.seen if e.type == type_]


@asynccontextmanager
async def harness(database_url: str, *, at: datetime | None = None, bus: Any = None,
                  **settings: Any) -> AsyncIterator[Harness]:
    bus = bus or InProcessBus()
    clock = Clock(at or shanghai(2026, 9, 29))
    app = create_app(Settings(database_url=database_url, partner_keys=PARTNER_KEYS, outbox_poll_interval_s=0.05,
                              escalation_scan_interval_s=0,
                              **settings), bus=bus, clock=clock)
    seen: list[Envelope] = []

    async def collect(msg: IncomingMessage) -> None:
        seen.append(Envelope.from_bytes(msg.value))

    # stands in for payments and anyone else listening to monitoring's topics
    bus.subscribe("test-listener", ["monitoring.person", "monitoring.warning", "monitoring.comparison"], collect)
    async with running(app) as client:
        yield Harness(client=client, bus=bus, clock=clock, app=app, seen=seen)


def decision(persons: list[str], *, program: str = "dibao", outcome: str = "approved", region: str = VILLAGE,
             effective_from: date = date(2026, 9, 1), reasons: list[str] | None = None) -> DecisionMade:
    paid = outcome in ("approved", "single_person", "gradual_exit")
    at = datetime(2026, 9, 1, 2, tzinfo=timezone.utc)
    return DecisionMade(
        decision_id=str(uuid.uuid4()), case_id=str(uuid.uuid4()), application_id=str(uuid.uuid4()), program=program,
        channel="window", region_code=region, handling_region_code=region[:9] + "000",
        applicant_person_id=persons[0], covered_person_ids=persons if paid else [], outcome=outcome,
        monthly_amount=Decimal("500.00") if paid and program != "linshi" else None,
        one_time_amount=Decimal("1200.00") if paid and program == "linshi" else None,
        approval_level="township", effective_from=effective_from, policy_version="v-test", received_at=at,
        decided_at=at, decided_by="township_clerk-test", reasons=reasons or [])


def benefit_stopped(persons: list[str], *, program: str = "dibao", region: str = VILLAGE,
                    effective_from: date = date(2026, 10, 1)) -> BenefitChanged:
    return BenefitChanged(case_id=str(uuid.uuid4()), program=program, region_code=region,
                          applicant_person_id=persons[0], covered_person_ids=persons, change="stop",
                          old_monthly_amount=Decimal("500.00"), new_monthly_amount=None,
                          effective_from=effective_from, policy_version="v-test", reason="收入超过边缘线")
