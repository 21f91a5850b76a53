"""M2 partner data: signed requests (``POST /v1/partner-events``) and the ``partner.events`` topic.

Every partner event is stored as a partner record and compared with the register at once by
the same set-based engine the monthly files use (comparison.py), in the same transaction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping

import orjson
import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError

from shared.auth import Principal
from shared.calendar import to_shanghai_date
from shared.db import insert_ignore
from shared.errors import Forbidden, InvalidInput, Unauthorized
from shared.events.monitoring import PARTNER_EVENT_TYPES, PartnerEvent, PartnerEventReported
from shared.logging import get_logger
from shared.messaging.envelope import Envelope
from shared.messaging.tables import dead_letters
from shared.messaging.unit_of_work import UnitOfWork
from shared.privacy import present_id
from shared.runtime import ServiceRuntime

from services.monitoring.comparison import ComparisonEngine
from services.monitoring.domain.reference import ReferenceLines
from services.monitoring.domain.signing import body_digest, signature_problem
from services.monitoring.models import partner_nonces, partner_records, warnings

log = get_logger("monitoring.partners")
_DATA = Path(__file__).resolve().parent / "data" / "partners.json"
PARTNER_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(PartnerEvent)


@dataclass(frozen=True)
class PartnerDirectory:
    """Who may report what (data/partners.json + PARTNER_TYPES) and with which key (PARTNER_KEYS)."""

    types: dict[str, frozenset[str]]
    keys: dict[str, str]

    @classmethod
    def load(cls, keys: Mapping[str, str], overrides: Mapping[str, list[str]], path: Path = _DATA) -> "PartnerDirectory":
        raw = json.loads(path.read_text(encoding="utf-8"))["partners"]
        types = {pid: frozenset(p["types"]) for pid, p in raw.items()}
        types.update({pid: frozenset(t) for pid, t in overrides.items()})
        return cls(types=types, keys=dict(keys))

    def owns(self, partner_id: str, event_type: str) -> bool:
        return event_type in self.types.get(partner_id, frozenset())

    def types_of(self, partner_id: str) -> frozenset[str]:
        return self.types.get(partner_id, frozenset())


def validation_problems(exc: ValidationError) -> list[dict[str, str]]:
    """Field paths as the partner wrote them (the union's tag dropped): ``data.amount``."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in PARTNER_EVENT_TYPES:
            loc = loc[1:]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "union_tag_invalid" or err.get("type") == "union_tag_not_found":
            loc, msg = ["type"], f"must be one of {', '.join(PARTNER_EVENT_TYPES)}"
        out.append({"field": ".".join(loc) or "body", "message": msg})
    return out


def record_values(event: Any, *, channel: str, partner_id: str, now: datetime,
                  reference_lines: ReferenceLines) -> dict[str, Any]:
    d = event.data
    values: dict[str, Any] = {
        "file_id": None, "row_no": None, "channel": channel, "partner_id": partner_id, "type": event.type,
        "person_id": event.person_id, "occurred_on": event.occurred_on, "reference": event.reference,
        "data": d.model_dump(mode="json"), "received_at": now, "looks_eligible": False,
        "amount": None, "grade": None, "category": None, "region_code": None, "monthly_pci": None,
        "labor_capacity": None}
    if event.type == "medical_expense":
        values["amount"] = d.amount
    elif event.type == "disability_certified":
        values["grade"] = d.grade
    elif event.type == "poverty_monitoring":
        values.update(category=d.category, region_code=d.region_code, monthly_pci=d.monthly_per_capita_income,
                      labor_capacity=d.labor_capacity,
                      looks_eligible=reference_lines.looks_eligible(d.region_code, event.occurred_on,
                                                                    d.monthly_per_capita_income, d.labor_capacity))
    return values


class PartnerService:
    def __init__(self, runtime: ServiceRuntime, engine: ComparisonEngine, directory: PartnerDirectory,
                 reference_lines: ReferenceLines, *, max_age_s: int, clock: Callable[[], datetime]) -> None:
        self.runtime = runtime
        self.engine = engine
        self.directory = directory
        self.reference_lines = reference_lines
        self.max_age_s = max_age_s
        self.clock = clock

    # -- signed HTTP ------------------------------------------------------------------------
    def authenticate(self, principal: Principal, headers: Mapping[str, str], body_sha256: str | None) -> tuple[str, str]:
        """(partner id, nonce) of an authentic, fresh request; 401/403 otherwise. The nonce is
        stored by :meth:`consume_nonce` in the transaction that stores the request's effect.
        ``body_sha256=None`` checks everything but the body (call again once a stream is read)."""
        partner_id = headers.get("x-partner-id")
        if not partner_id:
            raise Unauthorized("X-Partner-Id header is required", headers={"WWW-Authenticate": "HMAC-SHA256"})
        if principal.sub != partner_id:
            raise Forbidden("the token's subject is not the partner named in X-Partner-Id")
        problem = signature_problem(key=self.directory.keys.get(partner_id), timestamp=headers.get("x-timestamp"),
                                    nonce=headers.get("x-nonce"), signature=headers.get("x-signature"),
                                    digest_hex=body_sha256, now=self.clock().timestamp(), max_age_s=self.max_age_s)
        if problem:
            log.warning("partner_request_rejected", partner=partner_id, reason=problem)
            raise Unauthorized(problem, headers={"WWW-Authenticate": "HMAC-SHA256"})
        return partner_id, headers["x-nonce"]

    async def consume_nonce(self, tx: UnitOfWork, partner_id: str, nonce: str, now: datetime) -> None:
        await tx.session.execute(partner_nonces.delete().where(
            partner_nonces.c.seen_at < now - timedelta(seconds=3 * self.max_age_s)))
        if not await insert_ignore(tx.session, partner_nonces, {"partner_id": partner_id, "nonce": nonce, "seen_at": now}):
            raise Unauthorized("X-Nonce was already used (replayed request)", headers={"WWW-Authenticate": "HMAC-SHA256"})

    def parse_event(self, body: bytes) -> Any:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput.field("body", f"not valid JSON: {exc}") from None
        try:
            event = PARTNER_EVENT_ADAPTER.validate_python(obj)
        except ValidationError as exc:
            errors = validation_problems(exc)
            raise InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors) from None
        if event.occurred_on > to_shanghai_date(self.clock()):
            raise InvalidInput.field("occurred_on", "is in the future")
        return event

    async def receive(self, principal: Principal, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        partner_id, nonce = self.authenticate(principal, headers, body_digest(body))
        event = self.parse_event(body)
        if not self.directory.owns(partner_id, event.type):
            raise Forbidden(f"partner {partner_id} may not report {event.type} events "
                            f"(it owns: {', '.join(sorted(self.directory.types_of(partner_id))) or 'none'})")
        now = self.clock()
        async with self.runtime.uow() as tx:
            await self.consume_nonce(tx, partner_id, nonce, now)
            result = await self._store_and_compare(tx, event, channel="api", partner_id=partner_id, now=now)
        return {**result, "person_id": present_id(event.person_id, principal.role)}

    # -- Kafka: partner.events ---------------------------------------------------------------
    async def on_partner_event(self, tx: UnitOfWork, env: Envelope, data: PartnerEventReported) -> None:
        problem = None
        if not self.directory.owns(data.partner_id, data.event.type):
            problem = f"partner {data.partner_id} may not report {data.event.type} events"
        elif data.event.occurred_on > to_shanghai_date(self.clock()):
            problem = "occurred_on is in the future"
        if problem:
            # Visible to operators with the other dead letters; the consumer goes on.
            log.warning("partner_event_refused", event_id=env.id, partner=data.partner_id, reason=problem)
            await tx.session.execute(dead_letters.insert().values(
                consumer=f"{self.runtime.name}:partner-check", topic=env.topic, event_id=env.id, type=env.type,
                payload=env.to_bytes(), error=problem, attempts=1, created_at=self.clock()))
            return
        await self._store_and_compare(tx, data.event, channel="kafka", partner_id=data.partner_id, now=self.clock())

    async def _store_and_compare(self, tx: UnitOfWork, event: Any, *, channel: str, partner_id: str,
                                 now: datetime) -> dict[str, Any]:
        values = record_values(event, channel=channel, partner_id=partner_id, now=now,
                               reference_lines=self.reference_lines)
        # stored under the person key; a poverty-monitoring person may enter the register or get
        # a coverage-gap warning, so their number is kept in the vault (others are matched only)
        if event.type == "poverty_monitoring":
            await self.engine.persons.keep(tx.session, [event.person_id])
        values["person_id"] = self.engine.persons.key(event.person_id)
        rid = (await tx.session.execute(partner_records.insert().values(**values)
                                        .returning(partner_records.c.id))).scalar_one()
        batch = f"r:{rid}"
        result = await self.engine.run(tx, partner_records.c.id == rid, batch=batch, now=now, source=partner_id)
        raised = (await tx.session.execute(
            sa.select(warnings.c.id, warnings.c.rule, warnings.c.kind, warnings.c.level, warnings.c.due_on,
                      warnings.c.due_provisional, warnings.c.region_code)
            .where(warnings.c.id > result.first_id, warnings.c.batch == batch).order_by(warnings.c.id))).mappings().all()
        return {"record_id": rid, "type": event.type, "register_entries": result.register_entries,
                "death_detected": bool(result.deaths_detected),
                "warnings": [{"warning_id": w["id"], "rule": w["rule"], "kind": w["kind"], "level": w["level"],
                              "region_code": w["region_code"], "due_on": w["due_on"].isoformat(),
                              "due_provisional": w["due_provisional"]} for w in raised]}
