"""Intake HTTP entrypoints: validate, call the use case, shape the answer."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from shared.auth import Principal, require_roles
from shared.errors import InvalidInput

from services.intake.schemas import ApplicationCreate, ApplicationOut, DocumentsSupplied
from services.intake.service import IntakeService

router = APIRouter(prefix="/v1", tags=["applications"])

FILERS = ("applicant", "hotline_operator", "village_coordinator", "township_clerk", "county_civil_affairs")
READERS = FILERS + ("township_office_director", "township_office_leader", "township_finance_leader",
                    "monitoring_operator")


def get_service(request: Request) -> IntakeService:
    return request.app.state.intake


Service = Annotated[IntakeService, Depends(get_service)]


@router.post("/applications", status_code=201, response_model=ApplicationOut,
             responses={200: {"model": ApplicationOut, "description": "The person's open application for this program"},
                        409: {"description": "Idempotency-Key reused with a different body"},
                        422: {"description": "Invalid input (problem+json naming each field)"}})
async def submit_application(
    body: ApplicationCreate, service: Service,
    principal: Annotated[Principal, Depends(require_roles(*FILERS))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    if idempotency_key is not None and not idempotency_key.strip():
        raise InvalidInput.field("Idempotency-Key", "must not be empty")
    status, out = await service.submit(body, principal, idempotency_key)
    return JSONResponse(out.model_dump(mode="json"), status_code=status)


@router.get("/applications/{application_id}", response_model=ApplicationOut)
async def get_application(application_id: str, service: Service,
                          principal: Annotated[Principal, Depends(require_roles(*READERS))]) -> ApplicationOut:
    return await service.get(application_id, principal)


@router.post("/applications/{application_id}/documents", response_model=ApplicationOut)
async def supply_documents(application_id: str, body: DocumentsSupplied, service: Service,
                           principal: Annotated[Principal, Depends(require_roles(*FILERS))]) -> ApplicationOut:
    return await service.supply_documents(application_id, body.documents, principal)
