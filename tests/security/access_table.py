"""Who may call what: one row per (service, METHOD, path) of the four OpenAPI documents.

Written by hand from the services' ``api.py`` files, their READMEs and design/API.md — never
computed from ``require_roles`` at run time, or the matrix could not fail. When an endpoint is
added or its roles change, the row is added or changed here on purpose (and reviewed).

Columns:

* ``roles`` — the roles admitted, or ``PUBLIC`` (no token needed).
* ``signed`` — ``partner_system`` callers must also sign the request (monitoring M2: headers
  X-Partner-Id = token sub, X-Timestamp, X-Nonce, X-Signature; services/monitoring/README.md).
* ``query`` — query parameters that make the call well-formed (otherwise 422 before the handler).
* ``region`` — for operations about a region (``region_code`` in the query, a region code or a
  region-keyed account in the path, or a region in the body): what a token of an allowed role
  for OTHER_COUNTY gets when it asks about COUNTY (403 or 404), with the role used and the
  request. ``None``: the operation is not about a caller-chosen region (ids are checked by the
  resource cells, or it is public / kernel-wide).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tests.support import COUNTY, TOWNSHIP, make_id

A = "applicant"
HOT = "hotline_operator"
VIL = "village_coordinator"
CLERK = "township_clerk"
DIR = "township_office_director"
LEAD = "township_office_leader"
TFIN = "township_finance_leader"
CCA = "county_civil_affairs"
CFIN = "county_finance"
PART = "partner_system"
MON = "monitoring_operator"

ALL_ROLES = frozenset({A, HOT, VIL, CLERK, DIR, LEAD, TFIN, CCA, CFIN, PART, MON})
PUBLIC: frozenset[str] | None = None

UUID = "00000000-0000-4000-8000-000000000000"
PERSON = make_id(date(1950, 3, 1), 901)

# Placeholder path parameters, by name (the generic cells only need neither 401 nor 403).
PATH_PLACEHOLDERS: dict[str, str] = {
    **{name: UUID for name in ("application_id", "call_id", "case_id", "decision_id", "job_id", "allocation_id",
                               "reimbursement_id", "disbursement_id", "payment_id", "run_id", "file_id")},
    "feedback_id": "1", "warning_id": "1",
    "county_code": COUNTY, "township_code": TOWNSHIP, "region_code": COUNTY,
    "account": f"reserve:{TOWNSHIP}", "person_id": PERSON, "kind": "quarterly",
}


@dataclass(frozen=True)
class Region:
    """OTHER_COUNTY token (role ``role``) asking about COUNTY → ``status``."""
    status: int
    role: str
    where: str  # "query" | "path" | "body"
    body: dict[str, Any] | None = None  # the request body ("body" rows)
    query: dict[str, Any] = field(default_factory=dict)  # extra query (besides the row's)


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    path: str
    roles: frozenset[str] | None
    signed: bool = False
    query: dict[str, Any] = field(default_factory=dict)
    region: Region | None = None
    note: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.service, self.method, self.path)

    @property
    def public(self) -> bool:
        return self.roles is None


def r(service: str, method: str, path: str, roles: frozenset[str] | set[str] | None, **kw: Any) -> Row:
    return Row(service, method, path, None if roles is None else frozenset(roles), **kw)


def rq(role: str, status: int = 403, **extra: Any) -> Region:
    """Region cell with the region in the query (``region_code=COUNTY``)."""
    return Region(status=status, role=role, where="query", query=extra)


# -- role sets, as the api.py files and READMEs describe them ---------------------------------------

# Kernel (shared/runtime.py): every service has these.
AUDITORS = {CCA, CFIN, MON}

# intake (services/intake/api.py docstrings: filing by the door's own role, I1)
IN_FILERS = {A, HOT, VIL, CLERK, CCA}
IN_READERS = {A, HOT, VIL, CLERK, DIR, LEAD, TFIN, CCA, MON}
IN_HANDLERS = {HOT, VIL, CLERK, DIR, LEAD, TFIN, CCA}
IN_TRANSFERRERS = {CLERK, DIR, LEAD, CCA}
IN_OPERATORS = {CCA, MON}
IN_HOTLINE_READERS = {HOT, CLERK, DIR, LEAD, TFIN, CCA, MON}
IN_FEEDBACK_READERS = {HOT, CLERK, DIR, CCA, MON}
IN_REPORTERS = {VIL, CLERK, DIR}
IN_REPORT_READERS = {CLERK, DIR, LEAD, TFIN, CCA, MON}

# eligibility (services/eligibility/api.py table)
EL_STAFF = {CLERK, DIR, LEAD, TFIN, CCA, CFIN, MON}
EL_FACTS = {CLERK, DIR, CCA, PART}
EL_DECIDERS = {CLERK, DIR, CCA}

# payments (services/payments/README.md: P1 county roles, P2 three township signers, P4 finance)
PA_STAFF = {CLERK, DIR, LEAD, TFIN, CCA, CFIN, MON}
PA_COUNTY = {CCA, CFIN}
PA_FINANCE = {TFIN, CCA, CFIN}
PA_SIGNERS = {DIR, LEAD, TFIN, CCA, CFIN}
PA_DOCUMENT_CLERKS = {CLERK, DIR, LEAD, CCA}
PA_ACCOUNT_KEEPERS = {TFIN, CFIN}

# monitoring (services/monitoring/api.py, README: partners sign; operators upload unsigned)
MO_VIEWERS = {MON, CCA, CLERK, DIR, LEAD}
MO_STAFF = MO_VIEWERS | {VIL}
MO_VERIFIERS = {VIL, CLERK, DIR, LEAD, CCA}
MO_INDICATOR_VIEWERS = MO_VIEWERS | {CFIN, TFIN}
MO_OPERATORS = {MON, CCA}
MO_UPLOADERS = MO_OPERATORS | {PART}
MO_VISITORS = {VIL, CLERK, DIR, LEAD}


def kernel(service: str) -> list[Row]:
    return [
        r(service, "GET", "/healthz", PUBLIC, note="liveness"),
        r(service, "GET", "/readyz", PUBLIC, note="readiness (scraped by orchestrators)"),
        r(service, "GET", "/metrics", PUBLIC, note="Prometheus scrape; not in the OpenAPI document"),
        r(service, "GET", "/v1/audit/verify", AUDITORS, note="service-wide audit chain"),
        r(service, "GET", "/v1/audit", AUDITORS, note="service-wide audit entries"),
    ]


MONTH = "2026-01"

TABLE: list[Row] = [
    # ---------------------------------------------------------------------------------- intake
    *kernel("intake"),
    r("intake", "POST", "/v1/applications", IN_FILERS),
    r("intake", "GET", "/v1/applications", IN_READERS, region=rq(CLERK, 403)),
    r("intake", "GET", "/v1/applications/{application_id}", IN_READERS, note="other region / applicant: 404"),
    r("intake", "POST", "/v1/applications/{application_id}/documents", IN_FILERS),
    r("intake", "POST", "/v1/applications/{application_id}/handoff", IN_HANDLERS),
    r("intake", "POST", "/v1/applications/{application_id}/transfers", IN_TRANSFERRERS),
    r("intake", "POST", "/v1/deadline-scans", IN_OPERATORS, note="scans the caller's own region only"),
    r("intake", "POST", "/v1/hotline-calls", {HOT}),
    r("intake", "GET", "/v1/hotline-calls", IN_HOTLINE_READERS),
    r("intake", "GET", "/v1/hotline-calls/{call_id}", IN_HOTLINE_READERS),
    r("intake", "POST", "/v1/hotline-calls/{call_id}/answer", IN_TRANSFERRERS),
    r("intake", "GET", "/v1/channel-feedback", IN_FEEDBACK_READERS),
    r("intake", "POST", "/v1/channel-feedback/{feedback_id}/retry", {HOT} | IN_OPERATORS),
    r("intake", "POST", "/v1/zero-reports", IN_REPORTERS,
      region=Region(403, CLERK, "body", body={"region_code": TOWNSHIP, "period": MONTH, "found_count": 0})),
    r("intake", "GET", "/v1/zero-reports", IN_REPORT_READERS | IN_REPORTERS, region=rq(CLERK, 403)),
    r("intake", "GET", "/v1/zero-reports/missing", IN_REPORT_READERS, query={"region_code": COUNTY, "period": MONTH},
      region=rq(CCA, 403)),
    r("intake", "PUT", "/v1/reporting-regions/{county_code}", {CCA},
      region=Region(403, CCA, "body", body={"regions": [{"code": TOWNSHIP, "name": "某镇"}]})),
    r("intake", "GET", "/v1/reporting-regions/{county_code}", IN_REPORT_READERS, region=Region(403, CCA, "path")),

    # ----------------------------------------------------------------------------- eligibility
    *kernel("eligibility"),
    r("eligibility", "POST", "/v1/policies", {CCA},
      region=Region(403, CCA, "body", body={"region_code": COUNTY, "effective_from": "2026-01-01",
                                            "params": {"dibao_standard_urban": "800.00"}}),
      note="API.md (FIXED): token region must cover the policy's region"),
    r("eligibility", "GET", "/v1/policies/{region_code}", PUBLIC, note="published rules; an invalid token is 401"),
    r("eligibility", "GET", "/v1/policies/{region_code}/versions", EL_STAFF,
      note="api.py table: 'staff' (not region-scoped: policies are published)"),
    r("eligibility", "GET", "/v1/policies-stale", EL_STAFF, region=rq(CCA, 403)),
    r("eligibility", "POST", "/v1/assessments", PUBLIC, note="API.md (FIXED): public calculator, stores nothing"),
    r("eligibility", "GET", "/v1/cases/{case_id}", EL_STAFF, note="other region: 404"),
    r("eligibility", "POST", "/v1/cases/{case_id}/facts", EL_FACTS),
    r("eligibility", "POST", "/v1/cases/{case_id}/decision", EL_DECIDERS),
    r("eligibility", "POST", "/v1/decision-batches", EL_DECIDERS,
      note="批量审核: each case checked as by its own decision (another region's case: 404 in its item)"),
    r("eligibility", "GET", "/v1/decisions/{decision_id}", EL_STAFF),
    r("eligibility", "GET", "/v1/decisions/{decision_id}/replay", EL_STAFF),
    r("eligibility", "GET", "/v1/reevaluations/{job_id}", EL_STAFF),

    # -------------------------------------------------------------------------------- payments
    *kernel("payments"),
    r("payments", "POST", "/v1/budget-appropriations", {CFIN},
      region=Region(403, CFIN, "body", body={"county_code": COUNTY, "amount": "100.00", "reference": "预-1"})),
    r("payments", "POST", "/v1/reserve-allocations", PA_COUNTY,
      region=Region(403, CCA, "body", body={"township_code": TOWNSHIP, "amount": "100.00", "reference": "联-1"})),
    r("payments", "GET", "/v1/reserve-allocations", PA_STAFF, region=rq(CCA, 403)),
    r("payments", "GET", "/v1/reserve-allocations/{allocation_id}", PA_STAFF),
    r("payments", "POST", "/v1/reserve-allocations/{allocation_id}/approvals", PA_COUNTY),
    r("payments", "POST", "/v1/reimbursements", {TFIN},
      region=Region(403, TFIN, "body", body={"township_code": TOWNSHIP, "period_from": "2026-01-01",
                                             "period_to": "2026-01-31", "amount": "100.00"})),
    r("payments", "GET", "/v1/reimbursements", PA_STAFF, region=rq(CCA, 403)),
    r("payments", "GET", "/v1/reimbursements/{reimbursement_id}", PA_STAFF),
    r("payments", "POST", "/v1/reimbursements/{reimbursement_id}/approval", {CFIN}),
    r("payments", "POST", "/v1/reimbursements/{reimbursement_id}/rejection", {CFIN}),
    r("payments", "GET", "/v1/reserve-funds", PA_STAFF, region=rq(CCA, 403)),
    r("payments", "GET", "/v1/reserve-funds/{township_code}", PA_STAFF, region=Region(404, CCA, "path"),
      note="a township outside the token's region is not revealed: 404"),
    r("payments", "POST", "/v1/reserve-funds/scan", PA_COUNTY,
      region=Region(403, CCA, "body", body={"region_code": COUNTY})),
    r("payments", "GET", "/v1/ledger/accounts", PA_FINANCE, region=rq(CFIN, 403)),
    r("payments", "GET", "/v1/ledger/verification", PA_COUNTY, note="whole-ledger invariants (no balances)"),
    r("payments", "GET", "/v1/ledger/accounts/{account}/entries", PA_FINANCE, region=Region(404, CFIN, "path"),
      note="an account outside the token's region is not revealed: 404"),
    r("payments", "GET", "/v1/disbursements", PA_STAFF, region=rq(CCA, 403)),
    r("payments", "GET", "/v1/disbursements/{disbursement_id}", PA_STAFF),
    r("payments", "POST", "/v1/disbursements/{disbursement_id}/signoffs", PA_SIGNERS),
    r("payments", "POST", "/v1/disbursements/{disbursement_id}/documents-complete", PA_DOCUMENT_CLERKS),
    r("payments", "GET", "/v1/payment-deadlines", PA_STAFF, region=rq(CCA, 403)),
    r("payments", "POST", "/v1/payment-deadlines/scan", PA_COUNTY,
      region=Region(403, CCA, "body", body={"region_code": COUNTY}),
      note="scans the caller's region (or region_code inside it)"),
    r("payments", "GET", "/v1/cases/{case_id}/payment-deadline", PA_STAFF, note="other region: 404"),
    r("payments", "GET", "/v1/payments", PA_STAFF, region=rq(CCA, 403)),
    r("payments", "GET", "/v1/payments/{payment_id}", PA_STAFF),
    r("payments", "GET", "/v1/beneficiaries/{person_id}", PA_STAFF),
    r("payments", "PATCH", "/v1/beneficiaries/{person_id}/account", PA_ACCOUNT_KEEPERS),
    r("payments", "POST", "/v1/payroll-runs", PA_COUNTY,
      region=Region(403, CCA, "body", body={"region_code": COUNTY, "month": MONTH})),
    r("payments", "POST", "/v1/price-subsidy-runs", PA_COUNTY,
      region=Region(403, CCA, "body", body={"region_code": COUNTY, "month": MONTH, "amount_per_person": "10.00"})),
    r("payments", "GET", "/v1/payroll-runs", PA_STAFF, region=rq(CCA, 403)),
    r("payments", "GET", "/v1/payroll-runs/{run_id}", PA_STAFF),
    r("payments", "GET", "/v1/reconciliation", PA_FINANCE,
      query={"region_code": COUNTY, "from": "2026-01-01", "to": "2026-01-31"}, region=rq(CFIN, 403)),

    # ------------------------------------------------------------------------------ monitoring
    *kernel("monitoring"),
    r("monitoring", "GET", "/v1/indicators/new-cases", MO_VIEWERS, query={"region_code": COUNTY}, region=rq(MON, 403)),
    r("monitoring", "GET", "/v1/indicators", MO_INDICATOR_VIEWERS, query={"region_code": COUNTY, "period": MONTH},
      region=rq(MON, 403)),
    r("monitoring", "GET", "/v1/reports/{kind}", MO_INDICATOR_VIEWERS,
      query={"region_code": COUNTY, "period": "2026-Q1"}, region=rq(MON, 403)),
    r("monitoring", "GET", "/v1/register", MO_STAFF, query={"region_code": COUNTY}, region=rq(MON, 403)),
    r("monitoring", "GET", "/v1/register/{person_id}/history", MO_STAFF),
    r("monitoring", "PUT", "/v1/register/{person_id}/supply-mode", {CLERK, DIR, CCA}),
    r("monitoring", "GET", "/v1/potential-cases", MO_STAFF, query={"region_code": COUNTY}, region=rq(MON, 403)),
    r("monitoring", "POST", "/v1/tekun-visits", MO_VISITORS),
    r("monitoring", "POST", "/v1/partner-events", {PART}, signed=True,
      note="README M2: token sub = X-Partner-Id, signed; only the partner's own event types"),
    r("monitoring", "POST", "/v1/comparison-files", MO_UPLOADERS, signed=True,
      query={"kind": "death", "format": "jsonl"}, note="partners sign the file; operators upload unsigned"),
    r("monitoring", "GET", "/v1/comparison-files/{file_id}", MO_UPLOADERS | MO_VIEWERS,
      note="partners see their own files; staff the files of their region"),
    r("monitoring", "GET", "/v1/comparison-files/{file_id}/errors", MO_UPLOADERS | MO_VIEWERS),
    r("monitoring", "GET", "/v1/warnings", MO_STAFF, region=rq(MON, 403)),
    r("monitoring", "GET", "/v1/warnings/summary", MO_STAFF, region=rq(MON, 403)),
    r("monitoring", "GET", "/v1/warnings/{warning_id}", MO_STAFF),
    r("monitoring", "POST", "/v1/warnings/{warning_id}/close", MO_VERIFIERS),
    r("monitoring", "POST", "/v1/warnings/escalations", MO_OPERATORS,
      region=Region(403, MON, "body", body={"region_code": COUNTY})),
    r("monitoring", "GET", "/v1/funds/alerts", MO_INDICATOR_VIEWERS, query={"region_code": COUNTY},
      region=rq(MON, 403)),
    r("monitoring", "GET", "/v1/ops/health", MO_OPERATORS | MO_VIEWERS, note="this service's consumers and backlog"),
    r("monitoring", "GET", "/dashboard", PUBLIC, note="static page; holds no data (its script sends the token)"),
    r("monitoring", "GET", "/dashboard/app.js", PUBLIC, note="static script; not in the OpenAPI document"),
]

BY_KEY: dict[tuple[str, str, str], Row] = {row.key: row for row in TABLE}
assert len(BY_KEY) == len(TABLE), "duplicate rows in the access table"
