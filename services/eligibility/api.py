"""Eligibility HTTP entrypoints (thin: validate, call the service layer, map errors).

| method | path | who |
| --- | --- | --- |
| POST | /v1/policies | county_civil_affairs whose token region covers the policy's region (API.md, FIXED) |
| GET | /v1/policies/{region_code}?on=DATE | public (published rules) |
| GET | /v1/policies/{region_code}/versions | staff (history with publishers) |
| GET | /v1/policies-stale?region_code=&on= | staff in the region |
| POST | /v1/assessments | public, stores nothing (API.md, FIXED) |
| GET | /v1/cases/{id} | staff in the region |
| POST | /v1/cases/{id}/facts | township_clerk, township_office_director, county_civil_affairs, partner_system |
| POST | /v1/cases/{id}/decision | township level: township_clerk, township_office_director, county_civil_affairs; county level: county_civil_affairs |
| POST | /v1/decision-batches | the deciders above (each case checked as by its own decision) |
| GET | /v1/decisions/{id}, /v1/decisions/{id}/replay | staff in the region |
| GET | /v1/reevaluations/{id} | staff in the region |
| GET | /v1/audit, /v1/audit/verify | kernel (shared/runtime.py) |
"""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from shared.auth import OptionalPrincipal, Principal, ensure_region, require_roles
from shared.errors import InvalidInput

from services.eligibility.assessments import AssessmentService
from services.eligibility.cases import FACT_ROLES, CaseService
from services.eligibility.decisions import TOWNSHIP_DECIDERS, DecisionService
from services.eligibility.policies import PolicyService, today, valid_policy_region
from services.eligibility.reevaluation import ReevaluationService
from services.eligibility.schemas import AssessmentIn, DecisionBatchIn, DecisionIn, FactIn, PolicyIn

router = APIRouter(prefix="/v1")

# Anyone may call these (no login): they get the kernel's per-client rate limit.
PUBLIC_ROUTES = (("POST", "/v1/assessments"),)

CASE_READERS = ("township_clerk", "township_office_director", "township_office_leader", "township_finance_leader",
                "county_civil_affairs", "county_finance", "monitoring_operator")
POLICY_READERS = CASE_READERS


def _svc(name: str) -> Any:
    def get(request: Request) -> Any:
        return getattr(request.app.state, name)
    return get


Cases = Annotated[CaseService, Depends(_svc("cases"))]
Policies = Annotated[PolicyService, Depends(_svc("policies"))]
Decisions = Annotated[DecisionService, Depends(_svc("decisions"))]
Assessments = Annotated[AssessmentService, Depends(_svc("assessments"))]
Reevaluations = Annotated[ReevaluationService, Depends(_svc("reevaluations"))]


def _region(code: str) -> str:
    if not valid_policy_region(code):
        raise InvalidInput.field("region_code", "must be a 12-digit administrative region code")
    return code


# -- policies -------------------------------------------------------------------------------------

@router.post("/policies", status_code=201, tags=["policies"],
             responses={200: {"description": "The same version was already stored (an identical retry)"}},
             summary="Publish a policy version for a region from a date (201; 200 for an identical retry; 409 when the region already has another version on that date)")
async def publish_policy(body: PolicyIn, response: Response, policies: Policies,
                         principal: Annotated[Principal, Depends(require_roles("county_civil_affairs"))]) -> dict[str, Any]:
    status, out = await policies.publish(body.region_code, body.effective_from, body.params, body.note, principal)
    response.status_code = status
    if out.get("reevaluation_id"):
        response.headers["Location"] = f"/v1/policies/{body.region_code}?on={body.effective_from.isoformat()}"
    return out


@router.get("/policies/{region_code}", tags=["policies"],
            summary="The parameters in force on a date, each with the version it came from")
async def get_policy(region_code: str, policies: Policies, _: OptionalPrincipal,
                     on: Annotated[date | None, Query(description="YYYY-MM-DD; default today")] = None) -> dict[str, Any]:
    return await policies.view(_region(region_code), on or today())


@router.get("/policies/{region_code}/versions", tags=["policies"],
            summary="Every version of the region and the regions above it, with who published it and when")
async def policy_history(region_code: str, policies: Policies,
                         principal: Annotated[Principal, Depends(require_roles(*POLICY_READERS))]) -> dict[str, Any]:
    return await policies.history(_region(region_code))


@router.get("/policies-stale", tags=["policies"],
            summary="Regions whose 低保 standard has not been adjusted for more than STALE_STANDARD_MONTHS")
async def stale_policies(policies: Policies, principal: Annotated[Principal, Depends(require_roles(*POLICY_READERS))],
                         region_code: Annotated[str | None, Query()] = None,
                         on: Annotated[date | None, Query()] = None) -> dict[str, Any]:
    scope = _region(region_code or principal.region)
    ensure_region(principal, scope)
    return await policies.stale_regions(scope, on or today())


# -- the public calculator ---------------------------------------------------------------------------

@router.post("/assessments", tags=["assessments"], summary="What-if calculator (no login; stores nothing)")
async def assessments(body: AssessmentIn, service: Assessments, principal: OptionalPrincipal) -> JSONResponse:
    out, stale = await service.assess(body, principal)
    return JSONResponse(out, headers={"Policy-Stale": "true"} if stale else None)


# -- cases, facts, decisions ------------------------------------------------------------------------

@router.get("/cases/{case_id}", tags=["cases"])
async def get_case(case_id: str, service: Cases,
                   principal: Annotated[Principal, Depends(require_roles(*CASE_READERS))]) -> dict[str, Any]:
    return await service.get(case_id, principal)


@router.post("/cases/{case_id}/facts", status_code=201, tags=["cases"],
             summary="Record one means-test source's result (经济状况核对) by hand or from a partner system")
async def record_fact(case_id: str, body: FactIn, service: Cases,
                      principal: Annotated[Principal, Depends(require_roles(*FACT_ROLES))]) -> dict[str, Any]:
    return await service.record_fact(case_id, body, principal)


@router.post("/cases/{case_id}/decision", status_code=201, tags=["decisions"],
             summary="审核确认: confirm the proposal or override it with a reason")
async def decide(case_id: str, body: DecisionIn, service: Decisions,
                 principal: Annotated[Principal, Depends(require_roles(*TOWNSHIP_DECIDERS))]) -> dict[str, Any]:
    return await service.decide(case_id, body, principal)


@router.post("/decision-batches", tags=["decisions"],
             summary="批量审核: decide several cases of a work list; each answered with its own status (201 and a "
                     "summary of the decision, or its problem) in the batch's order")
async def decide_batch(body: DecisionBatchIn, service: Decisions,
                       principal: Annotated[Principal, Depends(require_roles(*TOWNSHIP_DECIDERS))]) -> dict[str, Any]:
    return await service.decide_batch(body.decisions, principal)


@router.get("/decisions/{decision_id}", tags=["decisions"])
async def get_decision(decision_id: str, service: Decisions,
                       principal: Annotated[Principal, Depends(require_roles(*CASE_READERS))]) -> dict[str, Any]:
    return await service.get(decision_id, principal)


@router.get("/decisions/{decision_id}/replay", tags=["decisions"],
            summary="Recompute a decision as of its day from its stored inputs and the policy versions in force then")
async def replay_decision(decision_id: str, service: Decisions,
                          principal: Annotated[Principal, Depends(require_roles(*CASE_READERS))]) -> dict[str, Any]:
    return await service.replay(decision_id, principal)


@router.get("/reevaluations/{job_id}", tags=["decisions"], summary="Progress and counts of a re-evaluation job")
async def get_reevaluation(job_id: str, service: Reevaluations,
                           principal: Annotated[Principal, Depends(require_roles(*CASE_READERS))]) -> dict[str, Any]:
    return await service.get(job_id, principal)
