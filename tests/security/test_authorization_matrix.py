"""The authorization matrix of all four services (issue 8, item 2).

``access_table.TABLE`` says, by hand, who may call every operation. This module checks that

* every operation of every app has a row and every row is an operation (a new endpoint without a
  row fails here), the table's roles equal what the code enforces (drift either way fails), and
  the OpenAPI documents mark exactly the non-public operations as needing a bearer token;
* token cells, per non-public operation: no token, an expired token, a wrong signature,
  ``alg: none``, each missing claim (sub, role, region, name, exp) → 401 problem+json; each role
  outside the row → 403 problem+json; each role in the row → neither 401 nor 403 (nor 5xx);
  partner-signed rows: a partner token without a signature, or signed with another key → 401;
* region cells: an allowed role with a token for OTHER_COUNTY asking about COUNTY → the row's
  403 or 404 (and the same question from COUNTY is not refused);
* resource cells with real data, made through the services: applications, 12345 calls, 零报告,
  an eligibility case and its decision, its payment clock and beneficiary, the register entry and
  an M6 warning, reserve allocations and reimbursements, ledger accounts and a comparison file
  are neither revealed nor changed from OTHER_COUNTY (404); an applicant sees only what they
  filed; a partner posts only its own event types under its own identity.

Everything runs in-process (``build_apps`` + ``running``) against one system for the module.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio

from services.embedded import build_apps
from services.monitoring.domain.signing import sign
from shared.openapi import api_routes, route_needs_token, route_roles
from shared.settings import DEV_JWT_SECRET
from tests.security.access_table import (
    A, ALL_ROLES, BY_KEY, CCA, CFIN, CLERK, DIR, EL_DECIDERS, EL_FACTS, EL_STAFF, HOT, IN_FILERS, IN_HANDLERS,
    IN_HOTLINE_READERS, IN_READERS, IN_REPORT_READERS, IN_REPORTERS, IN_TRANSFERRERS, MO_STAFF, MO_UPLOADERS,
    MO_VERIFIERS, MO_VIEWERS, MO_VISITORS, MON, PA_ACCOUNT_KEEPERS, PA_COUNTY, PA_STAFF, PART, PATH_PLACEHOLDERS,
    PERSON, TABLE, TFIN, Row)
from tests.support import COUNTY, OTHER_COUNTY, TOWNSHIP, application_body, eventually, running

SERVICES = ("intake", "eligibility", "payments", "monitoring")
SOURCES = ("hukou", "social_insurance", "vehicles", "real_estate", "housing_fund", "bank_deposits")
PARTNER = "civil_registration"
PARTNER_KEYS = {p: f"{p}-matrix-signing-key-0123456789abcdef" for p in (
    "civil_registration", "medical_insurance", "human_resources", "disabled_persons_federation", "education",
    "rural_revitalization")}
OVERRIDES: dict[str, Any] = dict(partner_keys=PARTNER_KEYS, public_rate_limit_per_s=10_000.0,
                                 public_rate_limit_burst=10_000, outbox_poll_interval_s=0.05)
BAD_TOKENS = ("no token", "expired", "wrong signature", "alg none",
              "no sub", "no role", "no region", "no name", "no exp")

module_loop = pytest.mark.asyncio(loop_scope="module")


# -- tokens -------------------------------------------------------------------------------------

def _claims(role: str, region: str, sub: str | None) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub or _sub(role), "role": role, "region": region, "name": "矩阵测试", "iat": now, "exp": now + 3600}


def _sub(role: str) -> str:
    return PARTNER if role == PART else f"{role}-matrix"


def good_token(role: str, region: str = COUNTY, sub: str | None = None) -> str:
    return jwt.encode(_claims(role, region, sub), DEV_JWT_SECRET, algorithm="HS256")


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def bad_token(kind: str, role: str) -> str | None:
    """A token that must be refused with 401 (for an otherwise allowed role)."""
    claims = _claims(role, COUNTY, None)
    if kind == "no token":
        return None
    if kind == "expired":
        claims.update(iat=claims["iat"] - 7200, exp=claims["iat"] - 60)
        return jwt.encode(claims, DEV_JWT_SECRET, algorithm="HS256")
    if kind == "wrong signature":
        return jwt.encode(claims, "another-secret-that-is-long-enough-0123456789", algorithm="HS256")
    if kind == "alg none":
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    if kind.startswith("no "):
        del claims[kind[3:]]
        return jwt.encode(claims, DEV_JWT_SECRET, algorithm="HS256")
    raise AssertionError(kind)


def bearer(tok: str | None) -> dict[str, str]:
    return {} if tok is None else {"Authorization": f"Bearer {tok}"}


def partner_headers(body: bytes, partner: str = PARTNER, key: str | None = None) -> dict[str, str]:
    ts, nonce = str(int(time.time())), uuid.uuid4().hex
    return {"X-Partner-Id": partner, "X-Timestamp": ts, "X-Nonce": nonce,
            "X-Signature": sign(key or PARTNER_KEYS[partner], ts, nonce, body)}


# -- the running system ------------------------------------------------------------------------------

@dataclass
class System:
    clients: dict[str, httpx.AsyncClient]

    async def call(self, row: Row, headers: dict[str, str], *, query: dict[str, Any] | None = None,
                   body: Any = None) -> httpx.Response:
        """The row's operation with placeholder path parameters and a ``{}`` body unless given."""
        url = row.path.format(**PATH_PLACEHOLDERS)
        content = None
        if row.method in ("POST", "PUT", "PATCH"):
            content = json.dumps({} if body is None else body).encode()
            headers = {"Content-Type": "application/json", **headers}
        return await self.clients[row.service].request(row.method, url, params={**row.query, **(query or {})},
                                                       content=content, headers=headers)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    apps = build_apps(tmp_path_factory.mktemp("matrix"), **OVERRIDES)
    async with AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(running(app)) for name, app in apps.items()}
        yield System(clients)


def _problem(resp: httpx.Response, status: int) -> str | None:
    """None when ``resp`` is the problem+json ``status``, else what is wrong."""
    if resp.status_code != status:
        return f"{resp.status_code} (expected {status}): {resp.text[:200]}"
    if not resp.headers.get("content-type", "").startswith("application/problem+json"):
        return f"{status} as {resp.headers.get('content-type')!r}, not application/problem+json"
    body = resp.json()
    if body.get("status") != status or not all(k in body for k in ("type", "title", "detail")):
        return f"{status} with a malformed problem body {body}"
    return None


# -- coverage and drift ----------------------------------------------------------------------------

def _operations(tmp_path: Any) -> dict[tuple[str, str, str], Any]:
    apps = build_apps(tmp_path, **OVERRIDES)
    return {(name, m, p): route for name, app in apps.items() for m, p, route in api_routes(app)}


def test_every_operation_has_a_row_and_every_row_is_an_operation(tmp_path: Any) -> None:
    ops = _operations(tmp_path)
    missing = sorted(set(ops) - set(BY_KEY))
    stale = sorted(set(BY_KEY) - set(ops))
    assert not missing, f"operations without a row in tests/security/access_table.py: {missing}"
    assert not stale, f"rows for operations that do not exist: {stale}"
    assert {row.service for row in TABLE} == set(SERVICES)


def test_table_roles_equal_what_the_code_enforces(tmp_path: Any) -> None:
    drift = []
    for key, route in _operations(tmp_path).items():
        if (row := BY_KEY.get(key)) is None:
            continue  # reported by the coverage test
        enforced = route_roles(route)
        if row.public:
            if enforced is not None or route_needs_token(route):
                drift.append(f"{key}: table says public, code requires {sorted(enforced or [])}")
        elif enforced != row.roles:
            drift.append(f"{key}: table {sorted(row.roles or [])}, code {sorted(enforced or [])} "
                         f"(code adds {sorted((enforced or set()) - row.roles)}, "
                         f"lacks {sorted(row.roles - (enforced or set()))})")
        if not row.public and not row.roles <= ALL_ROLES:
            drift.append(f"{key}: unknown roles {sorted(row.roles - ALL_ROLES)}")
        if row.signed and (row.public or PART not in row.roles):
            drift.append(f"{key}: signed, but partner_system may not call it")
        if row.region is not None and (row.public or row.region.role not in row.roles):
            drift.append(f"{key}: region cell uses {row.region.role}, which the row does not admit")
    assert not drift, "\n".join(drift)


def test_openapi_documents_say_which_operations_need_a_token(tmp_path: Any) -> None:
    apps = build_apps(tmp_path, **OVERRIDES)
    wrong = []
    for name, app in apps.items():
        for path, ops in app.openapi()["paths"].items():
            for method, op in ops.items():
                if (row := BY_KEY.get((name, method.upper(), path))) is None:
                    continue  # reported by the coverage test
                security = op.get("security")
                if row.public and security not in (None, [{"bearerAuth": []}, {}]):
                    wrong.append(f"{row.key}: public but documented as {security}")
                if not row.public and security != [{"bearerAuth": []}]:
                    wrong.append(f"{row.key}: needs a token but documented as {security}")
    assert not wrong, "\n".join(wrong)


# -- token, role and region cells ----------------------------------------------------------------------

GUARDED = [row for row in TABLE if not row.public]
PUBLIC_ROWS = [row for row in TABLE if row.public]


def _id(row: Row) -> str:
    return f"{row.service} {row.method} {row.path}"


def _partner_extra(row: Row, role: str) -> dict[str, str]:
    """Signature headers for the ``{}`` body when a partner calls a signed row."""
    return partner_headers(b"{}") if row.signed and role == PART else {}


@module_loop
@pytest.mark.parametrize("row", GUARDED, ids=_id)
async def test_token_role_and_region_cells(system: System, row: Row) -> None:
    failures: list[str] = []
    assert row.roles
    some_allowed = sorted(row.roles)[0]

    for kind in BAD_TOKENS:
        resp = await system.call(row, bearer(bad_token(kind, some_allowed)) | _partner_extra(row, some_allowed))
        if (why := _problem(resp, 401)) is not None:
            failures.append(f"{kind}: {why}")

    for role in sorted(ALL_ROLES):
        resp = await system.call(row, bearer(good_token(role)) | _partner_extra(row, role))
        if role in row.roles:
            if resp.status_code in (401, 403) or resp.status_code >= 500:
                failures.append(f"allowed {role}: {resp.status_code} {resp.text[:200]}")
        elif (why := _problem(resp, 403)) is not None:
            failures.append(f"denied {role}: {why}")

    if row.signed:  # a partner token alone is not enough: the request must be signed with its key
        for what, extra in (("unsigned", {}),
                            ("signed with another key", partner_headers(b"{}", key="x" * 40))):
            resp = await system.call(row, bearer(good_token(PART)) | extra)
            if (why := _problem(resp, 401)) is not None:
                failures.append(f"partner {what}: {why}")

    if (reg := row.region) is not None:
        query = {**reg.query, **({"region_code": COUNTY} if reg.where == "query" else {})}
        foreign = await system.call(row, bearer(good_token(reg.role, OTHER_COUNTY, sub=f"{reg.role}-other")),
                                    query=query, body=reg.body)
        if (why := _problem(foreign, reg.status)) is not None:
            failures.append(f"region: {reg.role}@{OTHER_COUNTY} about {COUNTY}: {why}")
        if row.method == "GET":  # the same question from inside the region is not refused
            inside = await system.call(row, bearer(good_token(reg.role, COUNTY)), query=query)
            # Not refused (a business 404 such as "no registry loaded" is fine, unless 404 is the
            # row's answer to a foreign token: then the home answer must differ).
            if inside.status_code in (401, 403, reg.status) or inside.status_code >= 500:
                failures.append(f"region: {reg.role}@{COUNTY} (home control): {inside.status_code} "
                                f"{inside.text[:200]}")

    assert not failures, f"{_id(row)}:\n  " + "\n  ".join(failures)


@module_loop
@pytest.mark.parametrize("row", PUBLIC_ROWS, ids=_id)
async def test_public_operations_need_no_token(system: System, row: Row) -> None:
    resp = await system.call(row, {})
    assert resp.status_code not in (401, 403) and resp.status_code < 500, resp.text[:300]
    # A token that is sent anyway must be valid (optional principal) or is ignored; never a 5xx.
    bad = await system.call(row, bearer(bad_token("wrong signature", CLERK)))
    assert bad.status_code in (resp.status_code, 401) and bad.status_code != 403, bad.text[:300]
    if bad.status_code == 401:
        assert _problem(bad, 401) is None, bad.text[:300]


# -- resource cells (real data) -------------------------------------------------------------------------

def other(role: str, sub: str | None = None) -> dict[str, str]:
    return bearer(good_token(role, OTHER_COUNTY, sub=sub or f"{role}-other"))


def home(role: str, sub: str | None = None) -> dict[str, str]:
    return bearer(good_token(role, COUNTY, sub=sub))


def _hidden(resp: httpx.Response, what: str, failures: list[str], allowed: tuple[int, ...] = (404,)) -> None:
    if resp.status_code not in allowed:
        failures.append(f"{what}: {resp.status_code} (expected {allowed}) {resp.text[:200]}")
    elif not resp.headers.get("content-type", "").startswith("application/problem+json"):
        failures.append(f"{what}: {resp.status_code} not problem+json")


@module_loop
async def test_intake_resources_stay_in_their_region_and_with_their_applicant(system: System) -> None:
    c = system.clients
    failures: list[str] = []
    clerk = home(CLERK)

    # An application in TOWNSHIP (county 522701) through intake's window, and one an applicant filed.
    r = await c["intake"].post("/v1/applications", json=application_body(seq=31), headers=clerk)
    assert r.status_code == 201, r.text
    app_id = r.json()["application_id"]
    alice, bob = home(A, sub="applicant-alice"), home(A, sub="applicant-bob")
    r = await c["intake"].post("/v1/applications", json=application_body(seq=32, channel="e_jiuzhu"), headers=alice)
    assert r.status_code == 201, r.text
    alice_app = r.json()["application_id"]
    before = (await c["intake"].get(f"/v1/applications/{app_id}", headers=clerk)).json()

    for role in sorted(IN_READERS - {A}):
        _hidden(await c["intake"].get(f"/v1/applications/{app_id}", headers=other(role)),
                f"intake GET application as {role}@{OTHER_COUNTY}", failures)
        listed = await c["intake"].get("/v1/applications", headers=other(role))
        if listed.status_code != 200 or {i["application_id"] for i in listed.json()["items"]} & {app_id, alice_app}:
            failures.append(f"intake list as {role}@{OTHER_COUNTY} shows county 522701's applications: "
                            f"{listed.text[:200]}")
    writes = [("documents", {"documents": ["income_statement"]}, IN_FILERS - {A}),
              ("handoff", {"to_sub": "someone", "to_role": "township_clerk", "reason": "越权"}, IN_HANDLERS),
              ("transfers", {"department": "medical", "reason": "越权"}, IN_TRANSFERRERS)]
    for action, body, roles in writes:
        for role in sorted(roles):
            _hidden(await c["intake"].post(f"/v1/applications/{app_id}/{action}", json=body, headers=other(role)),
                    f"intake POST {action} as {role}@{OTHER_COUNTY}", failures, (404,))
    after = (await c["intake"].get(f"/v1/applications/{app_id}", headers=clerk)).json()
    # (the application moves on by itself meanwhile: eligibility opens its case)
    if (after["owner"] != before["owner"] or after["transfers"]
            or after["missing_documents"] != before["missing_documents"]
            or any(step["actor"].endswith("-other") for step in after["timeline"])):
        failures.append(f"intake: a refused cross-region write changed the application: {after}")

    # An applicant reads only what they filed.
    if (r := await c["intake"].get(f"/v1/applications/{alice_app}", headers=alice)).status_code != 200:
        failures.append(f"applicant cannot read own application: {r.status_code} {r.text[:200]}")
    _hidden(await c["intake"].get(f"/v1/applications/{alice_app}", headers=bob),
            "intake: another applicant's application", failures)
    _hidden(await c["intake"].get(f"/v1/applications/{app_id}", headers=alice),
            "intake: an application the clerk filed, as applicant", failures)
    _hidden(await c["intake"].post(f"/v1/applications/{alice_app}/documents",
                                   json={"documents": ["income_statement"]}, headers=bob),
            "intake: documents to another applicant's application", failures, (404,))
    bob_list = (await c["intake"].get("/v1/applications", headers=bob)).json()["items"]
    if any(i["application_id"] in (app_id, alice_app) for i in bob_list):
        failures.append("intake: an applicant's list shows others' applications")
    alice_list = (await c["intake"].get("/v1/applications", headers=alice)).json()["items"]
    if [i["application_id"] for i in alice_list] != [alice_app]:
        failures.append(f"intake: the applicant's own list is {alice_list}")

    # A 12345 call routed to TOWNSHIP.
    r = await c["intake"].post("/v1/hotline-calls", headers=home(HOT), json={
        "work_order": "WO-MATRIX-1", "kind": "inquiry", "text": "低保怎么申请", "region_code": TOWNSHIP})
    assert r.status_code == 201, r.text
    call_id = r.json()["call_id"]
    for role in sorted(IN_HOTLINE_READERS):
        _hidden(await c["intake"].get(f"/v1/hotline-calls/{call_id}", headers=other(role)),
                f"intake GET hotline call as {role}@{OTHER_COUNTY}", failures)
        listed = await c["intake"].get("/v1/hotline-calls", headers=other(role))
        if listed.status_code != 200 or any(i["call_id"] == call_id for i in listed.json()):
            failures.append(f"intake: hotline list as {role}@{OTHER_COUNTY}: {listed.text[:200]}")
    for role in sorted(IN_TRANSFERRERS):
        _hidden(await c["intake"].post(f"/v1/hotline-calls/{call_id}/answer", json={"text": "越权答复"},
                                       headers=other(role)),
                f"intake POST hotline answer as {role}@{OTHER_COUNTY}", failures, (404,))
    if (r := await c["intake"].get(f"/v1/hotline-calls/{call_id}", headers=home(HOT))).json()["state"] != "open":
        failures.append(f"intake: a refused cross-region answer changed the call: {r.text[:200]}")

    # A 零报告 of TOWNSHIP is not listed for another county.
    r = await c["intake"].post("/v1/zero-reports", headers=clerk,
                               json={"region_code": TOWNSHIP, "period": "2026-02", "found_count": 0})
    assert r.status_code == 201, r.text
    for role in sorted(IN_REPORT_READERS | IN_REPORTERS):
        listed = await c["intake"].get("/v1/zero-reports", headers=other(role))
        if listed.status_code != 200 or any(i["region_code"] == TOWNSHIP for i in listed.json()):
            failures.append(f"intake: zero-report list as {role}@{OTHER_COUNTY}: {listed.text[:200]}")

    assert not failures, "\n".join(failures)


@module_loop
async def test_case_decision_payments_and_register_stay_in_their_region(system: System) -> None:
    """One application through all four services: its eligibility case and decision, its payment
    clock and beneficiary, its register entry and an M6 warning — none visible from OTHER_COUNTY."""
    c = system.clients
    failures: list[str] = []
    clerk, director = home(CLERK), home(DIR)
    body = application_body(seq=41)
    person = body["household"]["members"][0]["person_id"]
    r = await c["intake"].post("/v1/applications", json=body, headers=clerk)
    assert r.status_code == 201, r.text
    app_id = r.json()["application_id"]

    async def case_id() -> str | None:
        return (await c["intake"].get(f"/v1/applications/{app_id}", headers=clerk)).json()["case_id"]
    cid = await eventually(case_id)
    assert (await c["eligibility"].get(f"/v1/cases/{cid}", headers=clerk)).status_code == 200
    for role in sorted(EL_STAFF):
        _hidden(await c["eligibility"].get(f"/v1/cases/{cid}", headers=other(role)),
                f"eligibility GET case as {role}@{OTHER_COUNTY}", failures)
    fact = {"source": "hukou", "summary": "越权核对", "monthly_incomes": {}}
    for role in sorted(EL_FACTS):
        _hidden(await c["eligibility"].post(f"/v1/cases/{cid}/facts", json=fact, headers=other(role)),
                f"eligibility POST facts as {role}@{OTHER_COUNTY}", failures, (404,))
    for role in sorted(EL_DECIDERS):
        _hidden(await c["eligibility"].post(f"/v1/cases/{cid}/decision", json={"action": "confirm"},
                                            headers=other(role)),
                f"eligibility POST decision as {role}@{OTHER_COUNTY}", failures, (404,))
    case = (await c["eligibility"].get(f"/v1/cases/{cid}", headers=clerk)).json()
    if case["facts"]:
        failures.append(f"eligibility: refused cross-region facts were stored: {case['facts']}")

    # The payment clock in payments.
    async def clock() -> bool:
        return (await c["payments"].get(f"/v1/cases/{cid}/payment-deadline", headers=clerk)).status_code == 200
    await eventually(clock)
    for role in sorted(PA_STAFF):
        _hidden(await c["payments"].get(f"/v1/cases/{cid}/payment-deadline", headers=other(role)),
                f"payments GET payment-deadline as {role}@{OTHER_COUNTY}", failures)

    # The means test by hand (all six sources), then the township decides.
    for source in SOURCES:
        r = await c["eligibility"].post(f"/v1/cases/{cid}/facts", headers=clerk, json={
            "source": source, "assets_within_limits": True, "monthly_incomes": {}, "summary": f"{source}: 无"})
        assert r.status_code == 201, r.text
    r = await c["eligibility"].post(f"/v1/cases/{cid}/decision", json={"action": "confirm"}, headers=director)
    assert r.status_code == 201, r.text
    decision_id = r.json()["decision_id"]
    for url in (f"/v1/decisions/{decision_id}", f"/v1/decisions/{decision_id}/replay"):
        assert (await c["eligibility"].get(url, headers=clerk)).status_code == 200
        for role in sorted(EL_STAFF):
            _hidden(await c["eligibility"].get(url, headers=other(role)),
                    f"eligibility GET {url} as {role}@{OTHER_COUNTY}", failures)

    # The beneficiary in payments, the register entry in monitoring.
    async def beneficiary() -> bool:
        return (await c["payments"].get(f"/v1/beneficiaries/{person}", headers=home(CCA))).status_code == 200
    await eventually(beneficiary)
    for role in sorted(PA_STAFF):
        _hidden(await c["payments"].get(f"/v1/beneficiaries/{person}", headers=other(role)),
                f"payments GET beneficiary as {role}@{OTHER_COUNTY}", failures)
    for role in sorted(PA_ACCOUNT_KEEPERS):
        _hidden(await c["payments"].patch(f"/v1/beneficiaries/{person}/account",
                                          json={"account_number": "6222020000000001"}, headers=other(role)),
                f"payments PATCH beneficiary account as {role}@{OTHER_COUNTY}", failures, (404,))

    async def registered() -> bool:
        r = await c["monitoring"].get(f"/v1/register/{person}/history", headers=home(MON))
        return r.status_code == 200 and bool(r.json()["current"])
    await eventually(registered)
    for role in sorted(MO_STAFF):
        _hidden(await c["monitoring"].get(f"/v1/register/{person}/history", headers=other(role)),
                f"monitoring GET register history as {role}@{OTHER_COUNTY}", failures)
        listed = await c["monitoring"].get("/v1/register", params={"region_code": OTHER_COUNTY}, headers=other(role))
        if listed.status_code != 200 or person in listed.text:
            failures.append(f"monitoring: register of {OTHER_COUNTY} as {role}: {listed.status_code} "
                            f"{listed.text[:200]}")
    for role in ("township_clerk", "township_office_director", "county_civil_affairs"):
        _hidden(await c["monitoring"].put(f"/v1/register/{person}/supply-mode", json={"supply_mode": "dispersed"},
                                          headers=other(role)),
                f"monitoring PUT supply-mode as {role}@{OTHER_COUNTY}", failures, (404,))
    for role in sorted(MO_VISITORS):  # answered exactly as for a person nobody registered (422)
        visit = {"person_id": person, "visited_on": "2026-01-05"}
        foreign = await c["monitoring"].post("/v1/tekun-visits", json=visit, headers=other(role))
        unknown = await c["monitoring"].post("/v1/tekun-visits", json={**visit, "person_id": PERSON},
                                             headers=other(role))
        if (foreign.status_code, foreign.json()["detail"]) != (unknown.status_code, unknown.json()["detail"]) \
                or foreign.status_code < 400:
            failures.append(f"monitoring POST tekun-visit as {role}@{OTHER_COUNTY}: {foreign.status_code} "
                            f"{foreign.text[:200]}")

    # A death reported by civil registration raises an M6 warning in the person's region.
    r = await _partner_post(system, {**_event("death"), "person_id": person}, sub=PARTNER)
    assert r.status_code == 201, r.text
    [warning] = r.json()["warnings"]
    wid = warning["warning_id"]
    assert (await c["monitoring"].get(f"/v1/warnings/{wid}", headers=home(MON))).status_code == 200
    for role in sorted(MO_STAFF):
        _hidden(await c["monitoring"].get(f"/v1/warnings/{wid}", headers=other(role)),
                f"monitoring GET warning as {role}@{OTHER_COUNTY}", failures)
        listed = await c["monitoring"].get("/v1/warnings", headers=other(role))
        if listed.status_code != 200 or any(w.get("warning_id", w.get("id")) == wid for w in listed.json()["items"]):
            failures.append(f"monitoring: warning list as {role}@{OTHER_COUNTY}: {listed.text[:200]}")
    for role in sorted(MO_VERIFIERS):
        _hidden(await c["monitoring"].post(f"/v1/warnings/{wid}/close", json={"result": "death_verified"},
                                           headers=other(role)),
                f"monitoring POST warning close as {role}@{OTHER_COUNTY}", failures, (404,))
    if (await c["monitoring"].get(f"/v1/warnings/{wid}", headers=home(MON))).json()["status"] == "closed":
        failures.append("monitoring: a refused cross-region close closed the warning")

    assert not failures, "\n".join(failures)


@module_loop
async def test_reserve_money_stays_in_its_region(system: System) -> None:
    c = system.clients["payments"]
    failures: list[str] = []
    r = await c.post("/v1/budget-appropriations", headers=home(CFIN),
                     json={"county_code": COUNTY, "amount": "10000.00", "reference": "预算-矩阵"})
    assert r.status_code == 201, r.text
    r = await c.post("/v1/reserve-allocations", headers=home(CCA),
                     json={"township_code": TOWNSHIP, "amount": "1000.00", "reference": "联合行文-矩阵"})
    assert r.status_code == 201, r.text
    aid = r.json()["allocation_id"]
    for role in sorted(PA_STAFF):
        _hidden(await c.get(f"/v1/reserve-allocations/{aid}", headers=other(role)),
                f"payments GET allocation as {role}@{OTHER_COUNTY}", failures)
        listed = await c.get("/v1/reserve-allocations", headers=other(role))
        if listed.status_code != 200 or aid in listed.text:
            failures.append(f"payments: allocation list as {role}@{OTHER_COUNTY}: {listed.text[:200]}")
    for role in sorted(PA_COUNTY):
        _hidden(await c.post(f"/v1/reserve-allocations/{aid}/approvals", json={}, headers=other(role)),
                f"payments POST allocation approval as {role}@{OTHER_COUNTY}", failures, (404,))
    if (await c.get(f"/v1/reserve-allocations/{aid}", headers=home(CCA))).json()["approvals"]:
        failures.append("payments: a refused cross-region approval was recorded")

    r = await c.post("/v1/reimbursements", headers=home(TFIN), json={
        "township_code": TOWNSHIP, "period_from": "2026-03-01", "period_to": "2026-03-31", "amount": "100.00"})
    assert r.status_code == 201, r.text
    rid = r.json()["reimbursement_id"]
    for role in sorted(PA_STAFF):
        _hidden(await c.get(f"/v1/reimbursements/{rid}", headers=other(role)),
                f"payments GET reimbursement as {role}@{OTHER_COUNTY}", failures)
    for action in ("approval", "rejection"):
        _hidden(await c.post(f"/v1/reimbursements/{rid}/{action}", json={}, headers=other(CFIN)),
                f"payments POST reimbursement {action} as county_finance@{OTHER_COUNTY}", failures, (404,))
    if (await c.get(f"/v1/reimbursements/{rid}", headers=home(CFIN))).json()["status"] != "filed":
        failures.append("payments: a refused cross-region decision changed the reimbursement")
    for account in (f"county_budget:{COUNTY}", f"reserve:{TOWNSHIP}"):
        _hidden(await c.get(f"/v1/ledger/accounts/{account}/entries", headers=other(CFIN)),
                f"payments GET ledger {account} as county_finance@{OTHER_COUNTY}", failures)
    listed = await c.get("/v1/ledger/accounts", headers=other(CFIN))
    if listed.status_code != 200 or COUNTY[:6] in listed.text:
        failures.append(f"payments: ledger accounts as county_finance@{OTHER_COUNTY}: {listed.text[:200]}")
    assert not failures, "\n".join(failures)


@module_loop
async def test_payment_deadline_scan_stays_in_the_callers_region(system: System) -> None:
    """Regression: POST /v1/payment-deadlines/scan scanned every region — a county token (with a
    ``today`` of its choosing) marked other counties' P3 clocks breached, emitted their deadline
    events and listed their case and disbursement ids. It now scans the caller's region only."""
    c = system.clients
    clerk = home(CLERK)
    r = await c["intake"].post("/v1/applications", json=application_body(seq=51, program="linshi"), headers=clerk)
    assert r.status_code == 201, r.text
    app_id = r.json()["application_id"]

    async def case_id() -> str | None:
        return (await c["intake"].get(f"/v1/applications/{app_id}", headers=clerk)).json()["case_id"]
    cid = await eventually(case_id)

    async def clock() -> bool:
        return (await c["payments"].get(f"/v1/cases/{cid}/payment-deadline", headers=clerk)).status_code == 200
    await eventually(clock)
    far = {"today": "2030-01-02"}
    r = await c["payments"].post("/v1/payment-deadlines/scan", json=far, headers=other(CCA))
    assert r.status_code == 200, r.text
    assert all(x["case_id"] != cid for x in r.json()["reported"]), r.text
    r = await c["payments"].post("/v1/payment-deadlines/scan", json={**far, "region_code": COUNTY}, headers=other(CCA))
    assert _problem(r, 403) is None, r.text
    # The clock was left alone: its own county's scan still finds it getting worse.
    r = await c["payments"].post("/v1/payment-deadlines/scan", json=far, headers=home(CCA))
    assert r.status_code == 200, r.text
    assert [x["state"] for x in r.json()["reported"] if x["case_id"] == cid] == ["breached"], r.text


@module_loop
async def test_audit_entries_stay_in_their_region(system: System) -> None:
    """Audit entries carry their region; an auditor of another county sees none of them (was
    service-wide: found by this matrix)."""
    c = system.clients["payments"]
    r = await c.post("/v1/reserve-allocations", headers=home(CCA),
                     json={"township_code": TOWNSHIP, "amount": "10.00", "reference": "联合行文-审计"})
    assert r.status_code == 201, r.text
    aid = r.json()["allocation_id"]
    seen = await c.get("/v1/audit", params={"entity_id": aid}, headers=other(CFIN))
    assert seen.status_code in (403, 404) or seen.json()["items"] == [], seen.text[:300]
    own = await c.get("/v1/audit", params={"entity_id": aid}, headers=home(CFIN))
    assert own.status_code == 200 and own.json()["items"], own.text[:300]


@module_loop
async def test_comparison_files_stay_with_their_region_and_partner(system: System) -> None:
    c = system.clients
    failures: list[str] = []
    # A comparison file uploaded by a county operator for civil registration.
    line = json.dumps({"type": "death", "person_id": PERSON, "occurred_on": "2026-01-05"}).encode() + b"\n"
    r = await c["monitoring"].post("/v1/comparison-files", content=line, headers=home(CCA) | {
        "Content-Type": "application/x-ndjson"}, params={"kind": "death", "format": "jsonl", "partner_id": PARTNER})
    assert r.status_code == 201, r.text
    file_id = r.json()["id"]
    for suffix in ("", "/errors"):
        url = f"/v1/comparison-files/{file_id}{suffix}"
        if (ok := await c["monitoring"].get(url, headers=home(MON))).status_code != 200:
            failures.append(f"monitoring GET {url} at home: {ok.status_code}")
        for role in sorted((MO_UPLOADERS | MO_VIEWERS) - {PART}):
            _hidden(await c["monitoring"].get(url, headers=other(role)),
                    f"monitoring GET {url} as {role}@{OTHER_COUNTY}", failures)
        _hidden(await c["monitoring"].get(url, headers=home(PART, sub="medical_insurance")),
                f"monitoring GET {url} as another partner", failures)
        if (own := await c["monitoring"].get(url, headers=home(PART, sub=PARTNER))).status_code != 200:
            failures.append(f"monitoring GET {url} as the file's partner: {own.status_code}")

    assert not failures, "\n".join(failures)


def _event(type_: str) -> dict[str, Any]:
    occurred = (date.today() - timedelta(days=3)).isoformat()
    data = {"amount": "25000.00"} if type_ == "medical_expense" else {"record_source": "funeral"}
    return {"type": type_, "person_id": PERSON, "occurred_on": occurred, "data": data}


async def _partner_post(system: System, body: dict[str, Any], *, sub: str, partner: str = PARTNER,
                        key: str | None = None) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = bearer(good_token(PART, COUNTY, sub=sub)) | partner_headers(raw, partner, key) | {
        "Content-Type": "application/json"}
    return await system.clients["monitoring"].post("/v1/partner-events", content=raw, headers=headers)


@module_loop
async def test_a_partner_posts_only_its_own_events(system: System) -> None:
    # Correctly signed by civil_registration, but a type it does not own → 403.
    r = await _partner_post(system, _event("medical_expense"), sub=PARTNER)
    assert _problem(r, 403) is None, r.text
    # Its own type, signed with its key, but the token is another partner's → 403.
    r = await _partner_post(system, _event("death"), sub="medical_insurance")
    assert _problem(r, 403) is None, r.text
    # Another partner's key for civil_registration's id → 401 (the signature does not match).
    r = await _partner_post(system, _event("death"), sub=PARTNER, key=PARTNER_KEYS["medical_insurance"])
    assert _problem(r, 401) is None, r.text
    # The control: its own type under its own identity is accepted.
    r = await _partner_post(system, _event("death"), sub=PARTNER)
    assert r.status_code == 201, r.text
