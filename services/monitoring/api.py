"""Monitoring HTTP entrypoints (thin: validate, call the use case, shape the answer)."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any, AsyncIterator

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from shared.auth import Principal, ensure_region, require_roles
from shared.calendar import to_shanghai_date
from shared.errors import InvalidInput

from services.monitoring.domain.periods import parse_period
from services.monitoring.domain.reports import to_csv
from services.monitoring.schemas import EscalationScan, SupplyModeIn, TekunVisitIn, WarningClose
from services.monitoring.streams import MultipartFile, multipart_boundary

router = APIRouter(prefix="/v1")

VIEWERS = ("monitoring_operator", "county_civil_affairs", "township_clerk", "township_office_director",
           "township_office_leader")
STAFF = VIEWERS + ("village_coordinator",)
VERIFIERS = ("village_coordinator", "township_clerk", "township_office_director", "township_office_leader",
             "county_civil_affairs")
INDICATOR_VIEWERS = VIEWERS + ("county_finance", "township_finance_leader")
OPERATORS = ("monitoring_operator", "county_civil_affairs")
UPLOADERS = OPERATORS + ("partner_system",)
VISITORS = ("village_coordinator", "township_clerk", "township_office_director", "township_office_leader")
RegionQ = Annotated[str, Query(pattern=r"^\d{12}$", description="12-digit region code")]
MAX_ID = 2**63 - 1
WarningId = Annotated[int, Path(ge=1, le=MAX_ID)]
After = Annotated[int, Query(ge=0, le=MAX_ID, description="keyset paging: the last id seen")]


def svc(name: str) -> Any:
    def dep(request: Request) -> Any:
        return getattr(request.app.state, name)
    return Depends(dep)


def period_param(period: Annotated[str, Query(description="YYYY-MM, YYYY-Qn or YYYY-Hn")]) -> str:
    try:
        parse_period(period)
    except ValueError as exc:
        raise InvalidInput.field("period", str(exc)) from None
    return period


# -- indicators (I4, I5, P3, P4, T3, M3, M4, M6) ----------------------------------------------

@router.get("/indicators/new-cases", tags=["indicators"],
            summary="New cases by channel and the active-discovery share (I5)")
async def new_cases(principal: Annotated[Principal, Depends(require_roles(*VIEWERS))], region_code: RegionQ,
                    date_from: Annotated[date | None, Query(alias="from")] = None,
                    date_to: Annotated[date | None, Query(alias="to")] = None,
                    service: Any = svc("indicators")) -> dict[str, Any]:
    return await service.new_cases_by_channel(principal, region_code, date_from, date_to)


@router.get("/indicators", tags=["indicators"], summary="All indicators of a region for a month, quarter or half-year")
async def indicators(principal: Annotated[Principal, Depends(require_roles(*INDICATOR_VIEWERS))],
                     region_code: RegionQ, period: Annotated[str, Depends(period_param)],
                     service: Any = svc("indicators")) -> dict[str, Any]:
    return await service.indicators(principal, region_code, period)


@router.get("/reports/{kind}", tags=["reports"],
            summary="M7 report: quarterly (YYYY-Qn) or half_yearly (YYYY-Hn), JSON or CSV",
            responses={200: {"content": {"application/json": {}, "text/csv": {}}}})
async def report(request: Request, principal: Annotated[Principal, Depends(require_roles(*INDICATOR_VIEWERS))],
                 kind: Annotated[str, Path(description="quarterly | half_yearly")], region_code: RegionQ,
                 period: Annotated[str, Query(description="YYYY-Qn or YYYY-Hn")],
                 format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
                 service: Any = svc("reports")) -> Response:
    body = await service.report(principal, kind, region_code, period)
    wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        name = f"{kind}-{region_code}-{body['period']}.csv"
        return Response(to_csv([*body["rows"], body["total"]]), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return JSONResponse(body)


# -- register (M1, M5, T3) --------------------------------------------------------------------

@router.get("/register", tags=["register"], summary="The 7-category low-income register (M1)")
async def list_register(principal: Annotated[Principal, Depends(require_roles(*STAFF))], region_code: RegionQ,
                        category: str | None = None, page: Annotated[int, Query(ge=1)] = 1,
                        page_size: Annotated[int, Query(ge=1, le=500)] = 50,
                        service: Any = svc("register")) -> dict[str, Any]:
    return await service.list(principal, region_code=region_code, category=category, page=page, page_size=page_size)


@router.get("/register/{person_id}/history", tags=["register"], summary="A person's categories over time (M1)")
async def register_history(person_id: str, principal: Annotated[Principal, Depends(require_roles(*STAFF))],
                           service: Any = svc("register")) -> dict[str, Any]:
    return await service.history(person_id, principal)


@router.put("/register/{person_id}/supply-mode", tags=["register"],
            summary="特困: dispersed (分散供养, visited monthly: T3) or centralized (集中供养)")
async def supply_mode(person_id: str, body: SupplyModeIn,
                      principal: Annotated[Principal, Depends(require_roles("township_clerk", "township_office_director",
                                                                            "county_civil_affairs"))],
                      service: Any = svc("register")) -> dict[str, Any]:
    return await service.set_supply_mode(person_id, body.supply_mode, principal)


@router.get("/potential-cases", tags=["register"], summary="M5 potential cases kept on file")
async def potential_cases(principal: Annotated[Principal, Depends(require_roles(*STAFF))], region_code: RegionQ,
                          after: After = 0, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                          service: Any = svc("register")) -> dict[str, Any]:
    return await service.potential(principal, region_code=region_code, after_id=after, limit=limit)


@router.post("/tekun-visits", status_code=201, tags=["register"], summary="T3: record a visit or call to a 特困 person")
async def tekun_visit(body: TekunVisitIn, principal: Annotated[Principal, Depends(require_roles(*VISITORS))],
                      service: Any = svc("register")) -> dict[str, Any]:
    return await service.record_visit(principal, person_id=body.person_id, visited_on=body.visited_on,
                                      method=body.method, note=body.note)


# -- partner data (M2) ---------------------------------------------------------------------------

_PARTNER_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/PartnerEvent"}}}},
    "parameters": [{"name": n, "in": "header", "required": True, "schema": {"type": "string"}, "description": d}
                   for n, d in (("X-Partner-Id", "the partner id (= the token's sub)"),
                                ("X-Timestamp", "unix seconds, within 5 minutes of the server clock"),
                                ("X-Nonce", "unique per request, 8–128 characters"),
                                ("X-Signature", "hex HMAC-SHA256(partner key, timestamp + '\\n' + nonce + '\\n' + "
                                                "sha256_hex(body))"))]}


@router.post("/partner-events", status_code=201, tags=["partner data"], openapi_extra=_PARTNER_BODY,
             summary="A partner department reports one event (signed request; M2)")
async def partner_event(request: Request, principal: Annotated[Principal, Depends(require_roles("partner_system"))],
                        service: Any = svc("partners")) -> dict[str, Any]:
    body = await request.body()
    return await service.receive(principal, {k.lower(): v for k, v in request.headers.items()}, body)


async def _body_chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        yield chunk


@router.post("/comparison-files", status_code=201, tags=["partner data"],
             summary="Upload a monthly comparison file (CSV or JSONL; raw body or multipart 'file'), processed as a stream",
             openapi_extra={"requestBody": {"content": {"text/csv": {}, "application/x-ndjson": {},
                                                        "multipart/form-data": {"schema": {"type": "object", "properties": {
                                                            "file": {"type": "string", "format": "binary"}}}}}}})
async def upload_comparison_file(
        request: Request, principal: Annotated[Principal, Depends(require_roles(*UPLOADERS))],
        kind: Annotated[str, Query(description="death | medical_expense | unemployment | disability_certified | "
                                               "school_enrollment | poverty_monitoring | mixed (a type column)")],
        format: Annotated[str | None, Query(pattern="^(csv|jsonl)$")] = None,
        partner_id: Annotated[str | None, Query(max_length=64, description="Department the file came from "
                                                                            "(operators); partners: X-Partner-Id")] = None,
        filename: Annotated[str | None, Query(max_length=200)] = None,
        service: Any = svc("files")) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    headers = {k.lower(): v for k, v in request.headers.items()}
    chunks: Any = _body_chunks(request)
    fmt = format
    if content_type.lower().startswith("multipart/form-data"):
        chunks = await _sniff_multipart(MultipartFile(chunks, multipart_boundary(content_type)))
        filename = filename or chunks.filename
        fmt = fmt or chunks.format
    if fmt is None:
        name = (filename or "").lower()
        if "csv" in content_type or name.endswith(".csv"):
            fmt = "csv"
        elif "ndjson" in content_type or "jsonl" in content_type or name.endswith((".jsonl", ".ndjson")):
            fmt = "jsonl"
        else:
            raise InvalidInput.field("format", "give format=csv or format=jsonl")
    return await service.upload(principal, kind=kind, fmt=fmt, partner_id=partner_id, filename=filename,
                                chunks=chunks, headers=headers)


class _Sniffed:
    """A multipart file part whose name is known once its headers have been read."""

    def __init__(self, first: bytes, rest: AsyncIterator[bytes], filename: str | None) -> None:
        self.first, self.rest, self.filename = first, rest, filename
        name = (filename or "").lower()
        self.format = "jsonl" if name.endswith((".jsonl", ".ndjson")) else "csv" if name.endswith(".csv") else None

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        if self.first:
            yield self.first
        async for chunk in self.rest:
            yield chunk


async def _sniff_multipart(part: MultipartFile) -> _Sniffed:
    it = part.__aiter__()
    try:
        first = await it.__anext__()
    except StopAsyncIteration:
        first = b""
    return _Sniffed(first, it, part.filename)


@router.get("/comparison-files/{file_id}", tags=["partner data"], summary="A comparison file's counts")
async def comparison_file(file_id: str, principal: Annotated[Principal, Depends(require_roles(*(UPLOADERS + VIEWERS)))],
                          service: Any = svc("files")) -> dict[str, Any]:
    return await service.get(file_id, principal)


@router.get("/comparison-files/{file_id}/errors", tags=["partner data"],
            summary="Per-row errors of a comparison file: row number, field, message")
async def comparison_file_errors(file_id: str,
                                 principal: Annotated[Principal, Depends(require_roles(*(UPLOADERS + VIEWERS)))],
                                 after: After = 0,
                                 limit: Annotated[int, Query(ge=1, le=5000)] = 500,
                                 service: Any = svc("files")) -> dict[str, Any]:
    return await service.errors(file_id, principal, after_row=after, limit=limit)


# -- warnings (M3–M6) ----------------------------------------------------------------------------

@router.get("/warnings", tags=["warnings"], summary="Warnings in a region (open, overdue, escalated, closed)")
async def list_warnings(principal: Annotated[Principal, Depends(require_roles(*STAFF))],
                        region_code: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
                        status: Annotated[str | None, Query(pattern="^(open|overdue|escalated|closed)$")] = None,
                        level: Annotated[int | None, Query(ge=1, le=3)] = None,
                        kind: Annotated[str | None, Query(max_length=32)] = None,
                        after: After = 0, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                        service: Any = svc("warnings")) -> dict[str, Any]:
    return await service.list(principal, region_code=region_code, status=status, level=level, kind=kind,
                              after_id=after, limit=limit)


@router.get("/warnings/summary", tags=["warnings"], summary="Open warnings by level and deadline")
async def warnings_summary(principal: Annotated[Principal, Depends(require_roles(*STAFF))],
                           region_code: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
                           service: Any = svc("warnings")) -> dict[str, Any]:
    return await service.summary(principal, region_code)


@router.get("/warnings/{warning_id}", tags=["warnings"], summary="One warning with its trail")
async def get_warning(warning_id: WarningId, principal: Annotated[Principal, Depends(require_roles(*STAFF))],
                      service: Any = svc("warnings")) -> dict[str, Any]:
    return await service.get(warning_id, principal)


@router.post("/warnings/{warning_id}/close", tags=["warnings"],
             summary="Close a warning with the on-the-ground result (线下核处); a result is required")
async def close_warning(warning_id: WarningId, body: WarningClose,
                        principal: Annotated[Principal, Depends(require_roles(*VERIFIERS))],
                        service: Any = svc("warnings")) -> dict[str, Any]:
    return await service.close(warning_id, principal, result=body.result, note=body.note,
                               verified_on=body.verified_on)


@router.post("/warnings/escalations", tags=["warnings"],
             summary="Escalate every open warning past its deadline to the county (the daily scan)")
async def escalate(principal: Annotated[Principal, Depends(require_roles(*OPERATORS))], body: EscalationScan | None = None,
                   service: Any = svc("warnings")) -> dict[str, Any]:
    body = body or EscalationScan()
    region = body.region_code or principal.region
    ensure_region(principal, region)
    today = body.today or to_shanghai_date(service.clock())
    return await service.escalate_overdue(today, actor=f"{principal.role}:{principal.sub}", region_code=region)


# -- funds and service health (dashboard) ----------------------------------------------------------

@router.get("/funds/alerts", tags=["indicators"], summary="Latest reserve-fund alerts per township (P4)")
async def fund_alerts(principal: Annotated[Principal, Depends(require_roles(*INDICATOR_VIEWERS))],
                      region_code: RegionQ, service: Any = svc("ops")) -> dict[str, Any]:
    return await service.fund_alerts(principal, region_code)


@router.get("/ops/health", tags=["operations"],
            summary="This service's consumers, lag, outbox backlog and dead letters")
async def ops_health(principal: Annotated[Principal, Depends(require_roles(*(OPERATORS + VIEWERS)))],
                     service: Any = svc("ops")) -> dict[str, Any]:
    return await service.health()
