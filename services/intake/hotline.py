"""12345 calls that are not applications (I1, I2): inquiries, complaints and requests to apply
are recorded, routed to the office that answers them (分办), answered within their time limit,
and the answer goes back to the 12345 platform as the work order's callback (反馈)."""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shared.auth import Principal, region_covers, region_prefix
from shared.calendar import to_shanghai_date
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound

from services.intake import channel_feedback as feedback_outbox
from services.intake import metrics
from services.intake.domain.routing import hotline_handler
from services.intake.domain.validation import region_problem
from services.intake.models import hotline_calls
from services.intake.schemas import HotlineAnswerIn, HotlineCallIn, HotlineCallOut
from services.intake.service import IntakeService


class HotlineService:
    def __init__(self, intake: IntakeService) -> None:
        self.intake = intake
        self.runtime = intake.runtime

    async def receive(self, body: HotlineCallIn, principal: Principal) -> tuple[int, HotlineCallOut]:
        """201 with the routed call; 200 with the stored one when the same work order is sent
        again; 409 when the work order number comes back with other content."""
        if (p := region_problem(body.region_code, lowest_level="county")) is not None:
            raise InvalidInput.field("region_code", p)
        if not principal.covers(body.region_code):
            raise Forbidden(f"region {body.region_code} is outside this token's region {principal.region}")
        now = self.intake.clock()
        digest = hashlib.sha256(orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()
        handler_region, department = hotline_handler(body.kind, body.region_code)
        due = self.intake.days.add(now, self.intake.limits.hotline_answer[body.kind])
        row = {"id": str(uuid.uuid4()), "work_order": body.work_order, "kind": body.kind, "text": body.text,
               "region_code": body.region_code, "handler_region_code": handler_region,
               "handler_department": department, "state": "open", "received_at": now,
               "received_by": f"{principal.role}:{principal.sub}", "due_by": due.due,
               "due_by_provisional": due.provisional, "request_hash": digest}
        try:
            async with self.runtime.session_factory() as s, s.begin():
                await s.execute(hotline_calls.insert().values(row))
        except IntegrityError:
            async with self.runtime.session_factory() as s:
                existing = (await s.execute(sa.select(hotline_calls).where(
                    hotline_calls.c.work_order == body.work_order))).mappings().first()
            if existing is None:
                raise
            if existing["request_hash"] != digest:
                raise Conflict(f"work order {body.work_order} was already recorded with different content",
                               errors=[{"field": "work_order", "message": "already recorded with different content"}])
            return 200, _out(existing)
        return 201, _out(row)

    def _visible(self, row: Mapping[str, Any], principal: Principal) -> bool:
        return region_covers(principal.region, row["region_code"]) or region_covers(
            principal.region, row["handler_region_code"])

    async def get(self, call_id: str, principal: Principal) -> HotlineCallOut:
        async with self.runtime.session_factory() as s:
            row = (await s.execute(sa.select(hotline_calls).where(hotline_calls.c.id == call_id))).mappings().first()
        if row is None or not self._visible(row, principal):
            raise NotFound(f"hotline call {call_id} not found")
        return _out(row)

    async def list(self, principal: Principal, *, state: str | None, limit: int) -> list[HotlineCallOut]:
        prefix = region_prefix(principal.region) + "%"
        q = sa.select(hotline_calls).where(sa.or_(hotline_calls.c.region_code.like(prefix),
                                                  hotline_calls.c.handler_region_code.like(prefix)))
        if state == "overdue":
            q = q.where(hotline_calls.c.state == "open",
                        hotline_calls.c.due_by < to_shanghai_date(self.intake.clock()))
        elif state is not None:
            q = q.where(hotline_calls.c.state == state)
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(q.order_by(hotline_calls.c.received_at.desc()).limit(limit))).mappings().all()
        return [_out(r) for r in rows]

    async def answer(self, call_id: str, body: HotlineAnswerIn, principal: Principal) -> HotlineCallOut:
        """The handling office answers; the answer is the work order's 反馈 to 12345."""
        now = self.intake.clock()
        async with self.runtime.session_factory() as s, s.begin():
            row = (await s.execute(sa.select(hotline_calls).where(hotline_calls.c.id == call_id)
                                   .with_for_update())).mappings().first()
            if row is None or not self._visible(row, principal):
                raise NotFound(f"hotline call {call_id} not found")
            if not principal.covers(row["handler_region_code"]):
                raise Forbidden(f"this call is handled by {row['handler_department']} of {row['handler_region_code']}")
            if row["state"] != "open":
                raise Conflict(f"hotline call {call_id} was already answered")
            values = {"state": "answered", "answered_at": now, "answered_by": f"{principal.role}:{principal.sub}",
                      "answer_outcome": body.outcome, "answer_text": body.text}
            await s.execute(hotline_calls.update().where(hotline_calls.c.id == call_id).values(**values))
            await feedback_outbox.enqueue(s, channel="hotline_12345", work_order=row["work_order"],
                                          region_code=row["region_code"], outcome=body.outcome, text=body.text,
                                          now=now, hotline_call_id=call_id)
        if self.intake.feedback is not None:
            self.intake.feedback.wake()
        return _out({**row, **values})

    async def refresh_gauge(self) -> None:
        today = to_shanghai_date(self.intake.clock())
        async with self.runtime.session_factory() as s:
            # grouped by the output column: two copies of the comparison would be two parameters,
            # which PostgreSQL refuses as different expressions
            overdue = (hotline_calls.c.due_by < today).label("overdue")
            rows = dict((await s.execute(
                sa.select(overdue, sa.func.count()).where(hotline_calls.c.state == "open")
                .group_by(overdue))).all())
        metrics.HOTLINE_CALLS_OPEN.labels("true").set(int(rows.get(True, 0)))
        metrics.HOTLINE_CALLS_OPEN.labels("false").set(int(rows.get(False, 0)))


def _out(r: Mapping[str, Any]) -> HotlineCallOut:
    return HotlineCallOut(
        call_id=r["id"], work_order=r["work_order"], kind=r["kind"], text=r["text"], region_code=r["region_code"],
        handler_region_code=r["handler_region_code"], handler_department=r["handler_department"], state=r["state"],
        received_at=r["received_at"], received_by=r["received_by"], due_by=r["due_by"],
        due_by_provisional=r["due_by_provisional"], answered_at=r.get("answered_at"), answered_by=r.get("answered_by"),
        answer_outcome=r.get("answer_outcome"), answer_text=r.get("answer_text"))
