"""Intake HTTP entrypoints: validate, call the use case, shape the answer.

Roles (design/API.md): filing by the door's own role (I1); staff act only inside their token's
region and applicants only on what they filed — anything else answers 404 (reads) or 403."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Callable, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from shared.auth import Principal, authorize, require_roles
from shared.calendar import to_shanghai_date
from shared.errors import InvalidInput

from services.intake.channel_feedback import FeedbackSender
from services.intake.clocks import DeadlineScanner
from services.intake.hotline import HotlineService
from services.intake.schemas import (
    ApplicationCreate, ApplicationList, ApplicationOut, ChannelFeedbackOut, DeadlineScanIn, DeadlineScanOut,
    DocumentsSupplied, HandoffIn, HotlineAnswerIn, HotlineCallIn, HotlineCallOut, MissingZeroReportsOut,
    ReportingRegionsIn, ReportingRegionsOut, TransferIn, ZeroReportIn, ZeroReportOut)
from services.intake.service import IntakeService, canonical_hash, raw_body_hash
from services.intake.zero_reports import ZeroReportService

FILERS = ("applicant", "hotline_operator", "village_coordinator", "township_clerk", "county_civil_affairs")
TOWNSHIP_STAFF = ("township_clerk", "township_office_director", "township_office_leader", "township_finance_leader")
READERS = FILERS + TOWNSHIP_STAFF[1:] + ("monitoring_operator",)
HANDLERS = ("hotline_operator", "village_coordinator") + TOWNSHIP_STAFF + ("county_civil_affairs",)
TRANSFERRERS = ("township_clerk", "township_office_director", "township_office_leader", "county_civil_affairs")
OPERATORS = ("county_civil_affairs", "monitoring_operator")
HOTLINE_READERS = ("hotline_operator",) + TOWNSHIP_STAFF + ("county_civil_affairs", "monitoring_operator")
FEEDBACK_READERS = ("hotline_operator", "township_clerk", "township_office_director", "county_civil_affairs",
                    "monitoring_operator")
REPORTERS = ("village_coordinator", "township_clerk", "township_office_director")
REPORT_READERS = TOWNSHIP_STAFF + ("county_civil_affairs", "monitoring_operator")

router = APIRouter(prefix="/v1")


class ORJSONResponse(Response):
    """JSON via orjson; instants in UTC end with "Z" as pydantic writes them."""
    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z)


async def get_service(request: Request) -> IntakeService:
    return request.app.state.intake


async def get_hotline(request: Request) -> HotlineService:
    return request.app.state.hotline


async def get_feedback(request: Request) -> FeedbackSender:
    return request.app.state.feedback


async def get_scanner(request: Request) -> DeadlineScanner:
    return request.app.state.deadlines


async def get_zero_reports(request: Request) -> ZeroReportService:
    return request.app.state.zero_reports


Service = Annotated[IntakeService, Depends(get_service)]
Hotline = Annotated[HotlineService, Depends(get_hotline)]
Feedback = Annotated[FeedbackSender, Depends(get_feedback)]
Scanner = Annotated[DeadlineScanner, Depends(get_scanner)]
ZeroReports = Annotated[ZeroReportService, Depends(get_zero_reports)]


def role(*roles: str) -> object:
    return Depends(require_roles(*roles))


# -- applications ---------------------------------------------------------------------------

_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "Same key and body → the same application (201); same key, other body → 409."}


@router.post("/applications", status_code=201, response_model=ApplicationOut, tags=["applications"],
             openapi_extra={"parameters": [_IDEMPOTENCY_HEADER]},
             responses={200: {"model": ApplicationOut, "description": "The person's open application for this program"},
                        409: {"description": "Idempotency-Key reused with a different body"},
                        422: {"description": "Invalid input (problem+json naming each field)"}})
async def submit_application(body: ApplicationCreate, request: Request,
                             principal: Annotated[Principal, role(*FILERS)]) -> Response:
    """一门受理 (I1): hotline_12345 (hotline_operator, with the work-order number),
    e_jiuzhu (applicant), window (township clerk, county), active_discovery (village
    coordinator, township, county; with who found the person, where and when). Answers every
    missing document at once (一次性告知, I3) and dispatches to the handling township (I2, L1)."""
    raw = await request.body()
    return await _submit(request, body, principal, digest_of=lambda: raw_body_hash(raw))


async def _submit(request: Request, body: ApplicationCreate, principal: Principal, *,
                  digest_of: Callable[[], str]) -> Response:
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and (not idempotency_key.strip() or len(idempotency_key) > 200):
        raise InvalidInput.field("Idempotency-Key", "must be 1 to 200 characters")
    service: IntakeService = request.app.state.intake
    status, out = await service.submit(body, principal, idempotency_key, digest_of() if idempotency_key else None)
    return ORJSONResponse(out, status_code=status)


FILER_SET = frozenset(FILERS)


async def submit_application_direct(request: Request) -> Response:
    """``submit_application`` (the documented operation: same roles, body model, answers and
    errors, in the same order) served without FastAPI's per-request dependency and body
    machinery, which was a third of the hot path's CPU. FastAPI's order is kept: malformed JSON
    is a 422 before the token is looked at; then 401/403; then the body's field errors."""
    raw = await request.body()
    parsed: Any = _NO_BODY
    if raw and _is_json(request.headers.get("content-type")):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
                                           "input": {}, "ctx": {"error": exc.msg}}], body=raw) from None
    principal = await authorize(request, FILERS, FILER_SET)
    if parsed is _NO_BODY:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
                                     if not raw else
                                     [{"type": "model_attributes_type", "loc": ("body",),
                                       "msg": "Input should be a valid dictionary or object to extract fields from",
                                       "input": raw}], body=raw)
    try:
        body = ApplicationCreate.model_validate(parsed, from_attributes=True)  # as FastAPI validates bodies
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)],
                                     body=parsed) from None
    return await _submit(request, body, principal, digest_of=lambda: canonical_hash(parsed))


_NO_BODY = object()


def _is_json(content_type: str | None) -> bool:
    """FastAPI's rule: a body is JSON when its content type is application/json or application/*+json."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


@router.get("/applications", response_model=ApplicationList, tags=["applications"])
async def list_applications(
    service: Service, principal: Annotated[Principal, role(*READERS)],
    state: Annotated[Literal["overdue", "at_risk", "on_time"] | None, Query(
        description="限时办理 (I3): the current step's clock")] = None,
    region_code: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    status: str | None = None, channel: str | None = None,
    on: Annotated[date | None, Query(description="Judge the clocks as of this day (default today)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> ApplicationList:
    today, items = await service.list(principal, state=state, region_code=region_code, status=status,
                                      channel=channel, on=on, limit=limit)
    return ApplicationList(on=today, items=items)


@router.get("/applications/{application_id}", response_model=ApplicationOut, tags=["applications"])
async def get_application(application_id: str, service: Service,
                          principal: Annotated[Principal, role(*READERS)]) -> Response:
    """The status timeline: every step with time and actor. ID numbers are masked for roles
    that do not verify identity (shared/privacy.py)."""
    return ORJSONResponse(await service.get(application_id, principal))


@router.post("/applications/{application_id}/documents", response_model=ApplicationOut, tags=["applications"])
async def supply_documents(application_id: str, body: DocumentsSupplied, service: Service,
                           principal: Annotated[Principal, role(*FILERS)]) -> Response:
    """Documents named by the 一次性告知; once complete the application is accepted and dispatched."""
    return ORJSONResponse(await service.supply_documents(application_id, body.documents, principal))


@router.post("/applications/{application_id}/handoff", response_model=ApplicationOut, tags=["applications"])
async def handoff(application_id: str, body: HandoffIn, service: Service,
                  principal: Annotated[Principal, role(*HANDLERS)]) -> Response:
    """首问负责 (I3): the owner (or a supervisor) hands the case to a colleague; recorded in the timeline."""
    return ORJSONResponse(await service.handoff(application_id, body, principal))


@router.post("/applications/{application_id}/transfers", response_model=ApplicationOut, status_code=201,
             tags=["applications"])
async def transfer(application_id: str, body: TransferIn, service: Service,
                   principal: Annotated[Principal, role(*TRANSFERRERS)]) -> Response:
    """转办 (I2): to medical, education, housing, employment assistance or rural revitalization;
    emits intake.application.transferred."""
    return ORJSONResponse(await service.transfer(application_id, body, principal), status_code=201)


@router.post("/deadline-scans", response_model=DeadlineScanOut, tags=["time limits"])
async def scan_deadlines(scanner: Scanner, service: Service, principal: Annotated[Principal, role(*OPERATORS)],
                         body: DeadlineScanIn | None = None) -> DeadlineScanOut:
    """Run the 限时办理 scan now within the caller's region (the background task scans everywhere)."""
    today = (body.on if body and body.on else None) or to_shanghai_date(service.clock())
    return await scanner.scan(today, region_code=principal.region)


# -- 12345 calls and channel feedback ----------------------------------------------------------

@router.post("/hotline-calls", response_model=HotlineCallOut, status_code=201, tags=["12345"])
async def receive_call(body: HotlineCallIn, hotline: Hotline,
                       principal: Annotated[Principal, role("hotline_operator")]) -> Response:
    """A 12345 work order that is not (yet) an application: recorded and routed (分办)."""
    status, out = await hotline.receive(body, principal)
    return ORJSONResponse(out.model_dump(mode="json"), status_code=status)


@router.get("/hotline-calls", response_model=list[HotlineCallOut], tags=["12345"])
async def list_calls(hotline: Hotline, principal: Annotated[Principal, role(*HOTLINE_READERS)],
                     state: Literal["open", "answered", "overdue"] | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[HotlineCallOut]:
    return await hotline.list(principal, state=state, limit=limit)


@router.get("/hotline-calls/{call_id}", response_model=HotlineCallOut, tags=["12345"])
async def get_call(call_id: str, hotline: Hotline,
                   principal: Annotated[Principal, role(*HOTLINE_READERS)]) -> HotlineCallOut:
    return await hotline.get(call_id, principal)


@router.post("/hotline-calls/{call_id}/answer", response_model=HotlineCallOut, tags=["12345"])
async def answer_call(call_id: str, body: HotlineAnswerIn, hotline: Hotline,
                      principal: Annotated[Principal, role(*TRANSFERRERS)]) -> HotlineCallOut:
    """The handling office answers; the answer is sent back to 12345 (callback, retried until delivered)."""
    return await hotline.answer(call_id, body, principal)


@router.get("/channel-feedback", response_model=list[ChannelFeedbackOut], tags=["12345"])
async def list_feedback(feedback: Feedback, principal: Annotated[Principal, role(*FEEDBACK_READERS)],
                        state: Literal["pending", "failed", "sent"] | None = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[ChannelFeedbackOut]:
    """反馈 to channels: ``state=failed`` lists callbacks that did not go through (with the error)."""
    return await feedback.list(principal, state, limit)


@router.post("/channel-feedback/{feedback_id}/retry", response_model=ChannelFeedbackOut, tags=["12345"])
async def retry_feedback(feedback_id: Annotated[int, Path(ge=1, le=2**63 - 1)], feedback: Feedback,
                         principal: Annotated[Principal, role("hotline_operator", *OPERATORS)]) -> ChannelFeedbackOut:
    return await feedback.retry(feedback_id, principal)


# -- 零报告 (I4) -------------------------------------------------------------------------------

@router.post("/zero-reports", response_model=ZeroReportOut, status_code=201, tags=["zero reports"])
async def file_zero_report(body: ZeroReportIn, reports: ZeroReports,
                           principal: Annotated[Principal, role(*REPORTERS)]) -> Response:
    """A village or township reports the month, even when it found nobody (found_count 0)."""
    status, out = await reports.file(body, principal)
    return ORJSONResponse(out.model_dump(mode="json"), status_code=status)


@router.get("/zero-reports", response_model=list[ZeroReportOut], tags=["zero reports"])
async def list_zero_reports(reports: ZeroReports, principal: Annotated[Principal, role(*REPORT_READERS, *REPORTERS)],
                            region_code: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
                            period: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None) -> list[ZeroReportOut]:
    return await reports.list(principal, region_code=region_code, period=period)


@router.get("/zero-reports/missing", response_model=MissingZeroReportsOut, tags=["zero reports"])
async def missing_zero_reports(reports: ZeroReports, principal: Annotated[Principal, role(*REPORT_READERS)],
                               region_code: Annotated[str, Query(pattern=r"^\d{12}$")],
                               period: Annotated[str, Query()]) -> MissingZeroReportsOut:
    """Expected reporting regions (the county's registry) that have not reported ``period``."""
    return await reports.missing(principal, region_code=region_code, period=period)


@router.put("/reporting-regions/{county_code}", response_model=ReportingRegionsOut, tags=["zero reports"])
async def load_reporting_regions(county_code: str, body: ReportingRegionsIn, reports: ZeroReports,
                                 principal: Annotated[Principal, role("county_civil_affairs")]) -> ReportingRegionsOut:
    """Replace the county's registry of villages and townships that must file 零报告."""
    return await reports.load_regions(county_code, body, principal)


@router.get("/reporting-regions/{county_code}", response_model=ReportingRegionsOut, tags=["zero reports"])
async def get_reporting_regions(county_code: str, reports: ZeroReports,
                                principal: Annotated[Principal, role(*REPORT_READERS)]) -> ReportingRegionsOut:
    if len(county_code) != 12 or not county_code.isdigit():
        raise InvalidInput.field("county_code", "must be a 12-digit region code")
    return await reports.regions(county_code, principal)
