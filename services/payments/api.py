"""Payments HTTP entrypoints."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from shared.auth import Principal, require_roles

from services.payments.clocks import PaymentClockService

router = APIRouter(prefix="/v1", tags=["payments"])

STAFF = ("township_clerk", "township_office_director", "township_office_leader", "township_finance_leader",
         "county_civil_affairs", "county_finance", "monitoring_operator")


def get_clocks(request: Request) -> PaymentClockService:
    return request.app.state.clocks


@router.get("/cases/{case_id}/payment-deadline", summary="P3: the 5-working-day clock of a case")
async def payment_deadline(case_id: str, service: Annotated[PaymentClockService, Depends(get_clocks)],
                           principal: Annotated[Principal, Depends(require_roles(*STAFF))]) -> dict[str, Any]:
    return await service.get(case_id, principal)
