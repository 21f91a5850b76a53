"""Intake use cases: one transaction each (state + outbox)."""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shared.auth import Principal, region_covers
from shared.calendar import WorkingCalendar, to_shanghai_date
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.events.eligibility import CaseOpened
from shared.events.intake import ApplicationSubmitted
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork
from shared.privacy import present_id
from shared.runtime import ServiceRuntime

from services.intake.domain.checklist import load_checklist
from services.intake.domain.routing import acceptance_deadline, handling_township
from services.intake.domain.validation import ROLE_CHANNELS, application_problems, applicant_person_id
from services.intake.models import application_steps, applications
from services.intake.schemas import ApplicationCreate, ApplicationOut, DocumentOut, StepOut

OPEN_STATUSES = ("received", "accepted", "under_review", "decided")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def request_hash(body: ApplicationCreate) -> str:
    return hashlib.sha256(orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()


class IntakeService:
    def __init__(self, runtime: ServiceRuntime, calendar: WorkingCalendar) -> None:
        self.runtime = runtime
        self.calendar = calendar
        self.checklist = load_checklist()

    # -- submit -------------------------------------------------------------------------
    async def submit(self, body: ApplicationCreate, principal: Principal,
                     idempotency_key: str | None) -> tuple[int, ApplicationOut]:
        """Returns (201, new application) or (201, the same answer for a repeated key) or
        (200, the person's open application for this program)."""
        now = _now()
        problems = application_problems(body, today=to_shanghai_date(now))
        if problems:
            raise InvalidInput("; ".join(f"{f}: {m}" for f, m in problems),
                               errors=[{"field": f, "message": m} for f, m in problems])
        allowed = ROLE_CHANNELS.get(principal.role, set())
        if body.channel not in allowed:
            raise Forbidden(f"role {principal.role} cannot file through channel {body.channel}")
        # L1: temporary assistance is accepted wherever the hardship happened; staff act in their region.
        if principal.role != "applicant" and not region_covers(principal.region, body.region_code) and not (
                body.hardship and body.hardship.place_region_code
                and region_covers(principal.region, body.hardship.place_region_code)):
            raise Forbidden(f"region {body.region_code} is outside this token's region {principal.region}")

        key = f"{principal.sub}:{idempotency_key}" if idempotency_key else None
        digest = request_hash(body)
        person = applicant_person_id(body)
        replay = await self._replay(key, digest, person, body.program, principal)
        if replay is not None:
            return replay

        app_id = str(uuid.uuid4())
        provided = sorted(set(body.documents))
        missing = self.checklist.missing(body.program, body.region_code, provided)
        place = body.hardship.place_region_code if body.hardship else None
        township = handling_township(body.program, body.region_code, place)
        deadline = acceptance_deadline(body.program, now, self.calendar)
        status = "accepted" if not missing else "received"
        actor = f"{principal.role}:{principal.sub}"
        row = {
            "id": app_id, "channel": body.channel, "channel_ref": body.channel_ref, "program": body.program,
            "region_code": body.region_code, "handling_region_code": township, "area": body.area,
            "applicant_person_id": person, "open_key": f"{person}:{body.program}",
            "household": body.household.model_dump(mode="json"),
            "hardship": body.hardship.model_dump(mode="json") if body.hardship else None,
            "discovery": body.discovery.model_dump(mode="json") if body.discovery else None,
            "documents": provided, "missing_documents": missing, "status": status, "case_id": None,
            "owner_sub": principal.sub, "submitted_by_sub": principal.sub, "submitted_by_role": principal.role,
            "received_at": now, "due_by": deadline.due, "due_by_provisional": deadline.provisional,
            "idempotency_key": key, "request_hash": digest, "updated_at": now,
        }
        steps = [("received", f"via {body.channel}" + (f" ({body.channel_ref})" if body.channel_ref else ""))]
        if missing:
            steps.append(("documents_requested", "一次性告知: " + "、".join(
                d["name"] for d in self.checklist.describe(missing))))
        else:
            steps.append(("accepted", None))
            steps.append(("dispatched", f"to township {township}"))
        try:
            async with self.runtime.uow() as tx:
                await tx.session.execute(applications.insert().values(**row))
                await tx.session.execute(application_steps.insert(), [
                    {"application_id": app_id, "step": s, "at": now, "actor": actor, "detail": d} for s, d in steps])
                if not missing:
                    self._emit_submitted(tx, row)
        except IntegrityError:
            # Lost a race with an identical request (same key or same open person+program).
            replay = await self._replay(key, digest, person, body.program, principal)
            if replay is not None:
                return replay
            raise
        return 201, await self.get(app_id, principal)

    async def _replay(self, key: str | None, digest: str, person: str, program: str,
                      principal: Principal) -> tuple[int, ApplicationOut] | None:
        async with self.runtime.session_factory() as s:
            if key:
                found = (await s.execute(sa.select(applications.c.id, applications.c.request_hash)
                                         .where(applications.c.idempotency_key == key))).first()
                if found is not None:
                    if found.request_hash != digest:
                        raise Conflict("This Idempotency-Key was already used with a different request body",
                                       errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}])
                    return 201, await self._read(s, found.id, principal)
            open_id = await s.scalar(sa.select(applications.c.id).where(applications.c.open_key == f"{person}:{program}"))
            if open_id is not None:
                return 200, await self._read(s, open_id, principal)
        return None

    def _emit_submitted(self, tx: UnitOfWork, row: dict[str, Any]) -> None:
        tx.emit(ApplicationSubmitted(
            application_id=row["id"], channel=row["channel"], channel_ref=row["channel_ref"], program=row["program"],
            region_code=row["region_code"], handling_region_code=row["handling_region_code"], area=row["area"],
            applicant_person_id=row["applicant_person_id"], household=row["household"], hardship=row["hardship"],
            documents_complete=True, received_at=row["received_at"], due_by=row["due_by"],
            due_by_provisional=row["due_by_provisional"]), subject=row["id"])

    # -- documents (一次性告知 → complete) ------------------------------------------------
    async def supply_documents(self, app_id: str, documents: list[str], principal: Principal) -> ApplicationOut:
        now = _now()
        async with self.runtime.uow() as tx:
            row = (await tx.session.execute(sa.select(applications).where(applications.c.id == app_id)
                                            .with_for_update())).mappings().first()
            if row is None or not self._visible(row, principal):
                raise NotFound(f"application {app_id} not found")
            if row["status"] != "received":
                raise Conflict(f"application {app_id} is already {row['status']}; documents are complete")
            provided = sorted(set(row["documents"]) | set(documents))
            missing = self.checklist.missing(row["program"], row["region_code"], provided)
            actor = f"{principal.role}:{principal.sub}"
            values: dict[str, Any] = {"documents": provided, "missing_documents": missing, "updated_at": now}
            steps = [("documents_supplied", "、".join(d["name"] for d in self.checklist.describe(sorted(set(documents)))))]
            if not missing:
                values["status"] = "accepted"
                steps += [("accepted", None), ("dispatched", f"to township {row['handling_region_code']}")]
            await tx.session.execute(applications.update().where(applications.c.id == app_id).values(**values))
            await tx.session.execute(application_steps.insert(), [
                {"application_id": app_id, "step": s, "at": now, "actor": actor, "detail": d} for s, d in steps])
            if not missing:
                self._emit_submitted(tx, {**dict(row), **values})
        return await self.get(app_id, principal)

    # -- read ---------------------------------------------------------------------------
    async def get(self, app_id: str, principal: Principal) -> ApplicationOut:
        async with self.runtime.session_factory() as s:
            return await self._read(s, app_id, principal)

    def _visible(self, row: Any, principal: Principal) -> bool:
        if principal.role == "applicant":
            return bool(row["submitted_by_role"] == "applicant" and row["submitted_by_sub"] == principal.sub)
        return region_covers(principal.region, row["region_code"]) or region_covers(
            principal.region, row["handling_region_code"])

    async def _read(self, s: Any, app_id: str, principal: Principal) -> ApplicationOut:
        row = (await s.execute(sa.select(applications).where(applications.c.id == app_id))).mappings().first()
        # Outside one's scope is indistinguishable from absent: nothing is revealed.
        if row is None or not self._visible(row, principal):
            raise NotFound(f"application {app_id} not found")
        steps = (await s.execute(sa.select(application_steps).where(application_steps.c.application_id == app_id)
                                 .order_by(application_steps.c.id))).mappings().all()
        return ApplicationOut(
            application_id=row["id"], status=row["status"], channel=row["channel"], channel_ref=row["channel_ref"],
            program=row["program"], region_code=row["region_code"], handling_region_code=row["handling_region_code"],
            applicant_person_id=present_id(row["applicant_person_id"], principal.role),
            missing_documents=[DocumentOut(**d) for d in self.checklist.describe(row["missing_documents"])],
            received_at=row["received_at"], due_by=row["due_by"], due_by_provisional=row["due_by_provisional"],
            case_id=row["case_id"], owner=row["owner_sub"],
            timeline=[StepOut(step=st["step"], at=st["at"], actor=st["actor"], detail=st["detail"]) for st in steps])

    # -- events from other services ------------------------------------------------------
    async def on_case_opened(self, tx: UnitOfWork, env: Envelope, data: CaseOpened) -> None:
        result = await tx.session.execute(
            applications.update().where(applications.c.id == data.application_id)
            .values(case_id=data.case_id, status="under_review", updated_at=_now()))
        if result.rowcount:
            await tx.session.execute(application_steps.insert().values(
                application_id=data.application_id, step="under_review", at=data.opened_at,
                actor=f"eligibility:{env.source}", detail=f"case {data.case_id} opened"))
