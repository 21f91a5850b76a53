"""Monitoring HTTP entrypoints."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from shared.auth import Principal, require_roles

from services.monitoring.indicators import IndicatorService

router = APIRouter(prefix="/v1", tags=["indicators"])

VIEWERS = ("monitoring_operator", "county_civil_affairs", "township_clerk", "township_office_director",
           "township_office_leader")


def get_indicators(request: Request) -> IndicatorService:
    return request.app.state.indicators


@router.get("/indicators/new-cases", summary="New cases by channel and the active-discovery share (I5)")
async def new_cases(service: Annotated[IndicatorService, Depends(get_indicators)],
                    principal: Annotated[Principal, Depends(require_roles(*VIEWERS))],
                    region_code: Annotated[str, Query(pattern=r"^\d{12}$")],
                    date_from: Annotated[date | None, Query(alias="from")] = None,
                    date_to: Annotated[date | None, Query(alias="to")] = None) -> dict[str, Any]:
    return await service.new_cases_by_channel(principal, region_code, date_from, date_to)
