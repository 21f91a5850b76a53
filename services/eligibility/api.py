"""Eligibility HTTP entrypoints."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from shared.auth import Principal, require_roles

from services.eligibility.cases import CaseService

router = APIRouter(prefix="/v1", tags=["cases"])

CASE_READERS = ("township_clerk", "township_office_director", "township_office_leader", "township_finance_leader",
                "county_civil_affairs", "county_finance", "monitoring_operator")


def get_cases(request: Request) -> CaseService:
    return request.app.state.cases


@router.get("/cases/{case_id}")
async def get_case(case_id: str, service: Annotated[CaseService, Depends(get_cases)],
                   principal: Annotated[Principal, Depends(require_roles(*CASE_READERS))]) -> dict[str, Any]:
    return await service.get(case_id, principal)
