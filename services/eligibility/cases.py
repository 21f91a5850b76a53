"""Case use cases: open a case for each accepted application (the means test and decision follow)."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import sqlalchemy as sa

from shared.auth import Principal, region_covers
from shared.errors import NotFound
from shared.events.eligibility import CaseOpened
from shared.events.intake import ApplicationSubmitted
from shared.messaging.envelope import Envelope
from shared.messaging.unit_of_work import UnitOfWork
from shared.privacy import present_id
from shared.runtime import ServiceRuntime

from services.eligibility.models import cases


class CaseService:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    async def on_application_submitted(self, tx: UnitOfWork, env: Envelope, data: ApplicationSubmitted) -> None:
        exists = await tx.session.scalar(sa.select(cases.c.id).where(cases.c.application_id == data.application_id))
        if exists:
            return  # the same application re-sent under a new event id: still one case
        now = datetime.now(timezone.utc)
        case_id = str(uuid.uuid4())
        await tx.session.execute(cases.insert().values(
            id=case_id, application_id=data.application_id, channel=data.channel, program=data.program,
            region_code=data.region_code, handling_region_code=data.handling_region_code, area=data.area,
            applicant_person_id=data.applicant_person_id, household=data.household.model_dump(mode="json"),
            hardship=data.hardship.model_dump(mode="json") if data.hardship else None, status="open",
            received_at=data.received_at, opened_at=now, updated_at=now))
        tx.emit(CaseOpened(
            case_id=case_id, application_id=data.application_id, channel=data.channel, program=data.program,
            region_code=data.region_code, handling_region_code=data.handling_region_code,
            applicant_person_id=data.applicant_person_id, household_size=len(data.household.members),
            received_at=data.received_at, opened_at=now), subject=data.application_id)

    async def get(self, case_id: str, principal: Principal) -> dict[str, object]:
        async with self.runtime.session_factory() as s:
            row = (await s.execute(sa.select(cases).where(cases.c.id == case_id))).mappings().first()
        if row is None or not (region_covers(principal.region, row["region_code"])
                               or region_covers(principal.region, row["handling_region_code"])):
            raise NotFound(f"case {case_id} not found")
        return {
            "case_id": row["id"], "application_id": row["application_id"], "status": row["status"],
            "program": row["program"], "channel": row["channel"], "region_code": row["region_code"],
            "handling_region_code": row["handling_region_code"], "area": row["area"],
            "applicant_person_id": present_id(row["applicant_person_id"], principal.role),
            "household_size": len(row["household"]["members"]),
            "received_at": row["received_at"].isoformat(), "opened_at": row["opened_at"].isoformat(),
        }
