"""Payments HTTP entrypoints (thin: check the caller, call the use case, shape the answer)."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from shared.auth import Principal, require_roles
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.money import to_fen
from shared.pii import looks_like_id

from services.payments import ledger
from services.payments.composition import Payments
from services.payments.domain import ledger as dl
from services.payments.domain.periods import parse_month
from services.payments.models import ledger_accounts
from services.payments.schemas import (
    AccountIn, AllocationIn, AppropriationIn, CommentIn, Day, NoteIn, PayrollRunIn, PriceSubsidyRunIn,
    ReimbursementIn, ScanIn,
)
from services.payments.storage import in_region, today_shanghai
from services.payments.views import iso, yuan

router = APIRouter(prefix="/v1", tags=["payments"])

COUNTY = ("county_civil_affairs", "county_finance")
TOWNSHIP_SIGNERS = ("township_office_director", "township_office_leader", "township_finance_leader")
STAFF = ("township_clerk", *TOWNSHIP_SIGNERS, *COUNTY, "monitoring_operator")
FINANCE = ("township_finance_leader", *COUNTY)
ACCOUNT_KEEPERS = ("township_finance_leader", "county_finance")
DOCUMENT_CLERKS = ("township_clerk", "township_office_director", "township_office_leader", "county_civil_affairs")

RegionQuery = Annotated[str | None, Query(pattern=r"^\d{12}$", description="12-digit region code")]
IdPath = Annotated[str, Path(min_length=1, max_length=64)]


def get_payments(request: Request) -> Payments:
    return request.app.state.payments


App = Annotated[Payments, Depends(get_payments)]


Staff = Annotated[Principal, Depends(require_roles(*STAFF))]
CountyStaff = Annotated[Principal, Depends(require_roles(*COUNTY))]
CountyFinance = Annotated[Principal, Depends(require_roles("county_finance"))]
TownshipFinance = Annotated[Principal, Depends(require_roles("township_finance_leader"))]
Finance = Annotated[Principal, Depends(require_roles(*FINANCE))]
AccountKeeper = Annotated[Principal, Depends(require_roles(*ACCOUNT_KEEPERS))]
Signer = Annotated[Principal, Depends(require_roles(*TOWNSHIP_SIGNERS, *COUNTY))]
DocumentClerk = Annotated[Principal, Depends(require_roles(*DOCUMENT_CLERKS))]


def _month(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return parse_month(text)
    except ValueError as exc:
        raise InvalidInput.field("month", str(exc)) from None


def _scope(principal: Principal, region_code: str | None) -> str | None:
    if region_code is not None and not principal.covers(region_code):
        raise Forbidden(f"region {region_code} is outside this token's region {principal.region}")
    return region_code


# --- P1/P4 county budget, reserve funds --------------------------------------------------------

@router.post("/budget-appropriations", status_code=201, summary="Book county budget for social assistance")
async def appropriate(body: AppropriationIn, app: App, principal: CountyFinance) -> dict[str, Any]:
    return await app.reserve.appropriate(principal, county_code=body.county_code, amount_fen=to_fen(body.amount),
                                         reference=body.reference, note=body.note)


@router.post("/reserve-allocations", status_code=201, summary="P1: request a pre-allocation (联合行文预拨)")
async def request_allocation(body: AllocationIn, app: App, principal: CountyStaff) -> dict[str, Any]:
    return await app.reserve.request_allocation(principal, township_code=body.township_code,
                                                amount_fen=to_fen(body.amount), reference=body.reference,
                                                note=body.note)


@router.get("/reserve-allocations")
async def list_allocations(app: App, principal: Staff, region_code: RegionQuery = None) -> list[dict[str, Any]]:
    return await app.reserve.list_allocations(principal, _scope(principal, region_code))


@router.get("/reserve-allocations/{allocation_id}")
async def get_allocation(allocation_id: IdPath, app: App, principal: Staff) -> dict[str, Any]:
    return await app.reserve.get_allocation(principal, allocation_id)


@router.post("/reserve-allocations/{allocation_id}/approvals", status_code=201,
             summary="P1: county civil affairs and county finance each approve; money moves with the second")
async def approve_allocation(allocation_id: IdPath, app: App, principal: CountyStaff,
                             body: CommentIn | None = None) -> dict[str, Any]:
    return await app.reserve.approve_allocation(principal, allocation_id, body.comment if body else None)


@router.post("/reimbursements", status_code=201, summary="P4: report a period's reserve spending (报账)")
async def file_reimbursement(body: ReimbursementIn, app: App, principal: TownshipFinance) -> dict[str, Any]:
    return await app.reserve.file_reimbursement(principal, township_code=body.township_code,
                                                period_from=body.period_from, period_to=body.period_to,
                                                amount_fen=to_fen(body.amount), note=body.note)


@router.get("/reimbursements")
async def list_reimbursements(app: App, principal: Staff, region_code: RegionQuery = None) -> list[dict[str, Any]]:
    return await app.reserve.list_reimbursements(principal, _scope(principal, region_code))


@router.get("/reimbursements/{reimbursement_id}")
async def get_reimbursement(reimbursement_id: IdPath, app: App, principal: Staff) -> dict[str, Any]:
    return await app.reserve.get_reimbursement(principal, reimbursement_id)


@router.post("/reimbursements/{reimbursement_id}/approval", summary="P4: county finance approves; the reserve is replenished")
async def approve_reimbursement(reimbursement_id: IdPath, app: App, principal: CountyFinance,
                                body: NoteIn | None = None) -> dict[str, Any]:
    return await app.reserve.decide_reimbursement(principal, reimbursement_id, approve=True,
                                                  note=body.note if body else None)


@router.post("/reimbursements/{reimbursement_id}/rejection")
async def reject_reimbursement(reimbursement_id: IdPath, app: App, principal: CountyFinance,
                               body: NoteIn | None = None) -> dict[str, Any]:
    return await app.reserve.decide_reimbursement(principal, reimbursement_id, approve=False,
                                                  note=body.note if body else None)


@router.get("/reserve-funds", summary="P4 figures of every township reserve in a region")
async def reserve_funds(app: App, principal: Staff, region_code: RegionQuery = None,
                        as_of: Day | None = None) -> list[dict[str, Any]]:
    return await app.reserve.funds(principal, region_code, as_of or today_shanghai())


@router.get("/reserve-funds/{township_code}", summary="P4 figures: balance, 资金趴窝, 以拨代支 …")
async def reserve_fund(township_code: Annotated[str, Path(pattern=r"^\d{12}$")], app: App, principal: Staff,
                       as_of: Day | None = None) -> dict[str, Any]:
    return await app.reserve.fund(principal, township_code, as_of or today_shanghai())


@router.post("/reserve-funds/scan", summary="P4: raise payments.reserve.alert for new idle or unbacked money")
async def reserve_scan(app: App, principal: CountyStaff, body: ScanIn | None = None) -> dict[str, Any]:
    body = body or ScanIn()
    region = _scope(principal, body.region_code) or principal.region
    today = body.today or today_shanghai()
    return {"observed_on": today.isoformat(), "alerts": await app.reserve.scan(today, region)}


# --- the ledger ------------------------------------------------------------------------------------

@router.get("/ledger/accounts", summary="Balances of the pooled accounts in a region")
async def ledger_accounts_list(app: App, principal: Finance, region_code: RegionQuery = None) -> list[dict[str, Any]]:
    scope = _scope(principal, region_code) or principal.region
    async with app.runtime.session_factory() as s:
        rows = (await s.execute(sa.select(ledger_accounts).where(in_region(ledger_accounts.c.region_code, scope))
                                .order_by(ledger_accounts.c.code))).mappings().all()
    return [{"account": r["code"], "kind": r["kind"], "region_code": r["region_code"],
             "balance": yuan(dl.normal_balance(r["code"], int(r["balance_fen"]))),
             "never_negative": r["floor_zero"]} for r in rows]


@router.get("/ledger/verification", summary="Recompute the invariants: balanced transactions, balances = entries")
async def ledger_verification(app: App, principal: CountyStaff) -> dict[str, Any]:
    async with app.runtime.session_factory() as s:
        return await ledger.verify(s)


@router.get("/ledger/accounts/{account}/entries", summary="Statement of one account, newest first")
async def ledger_statement(account: Annotated[str, Path(max_length=96)], app: App, principal: Finance,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    try:
        kind = dl.kind_of(account)
    except dl.LedgerError:
        raise NotFound(f"no account {account}") from None
    key = dl.key_of(account)
    if kind in dl.PERSON_KINDS and looks_like_id(key):
        # a person's account is booked under the person key; the caller may name the person by number
        key = app.payouts.persons.key(key)
        account = f"{kind}:{key}"
    async with app.runtime.session_factory() as s:
        if kind in dl.PERSON_KINDS:
            if not await app.payouts.person_in_region(s, principal, key):
                raise NotFound(f"no account {account}")
        elif not principal.covers(key):
            raise NotFound(f"no account {account}")
        balance = await ledger.balance(s, account)
        entries = await ledger.statement(s, account, limit=limit)
    return {"account": account, "balance": yuan(dl.normal_balance(account, balance)),
            "entries": [{"entry_id": e["id"], "transaction_id": e["transaction_id"], "kind": e["kind"],
                         "side": e["side"], "amount": yuan(e["amount_fen"]), "payment_id": e["payment_id"],
                         "ref": {"type": e["ref_type"], "id": e["ref_id"]}, "memo": e["memo"], "actor": e["actor"],
                         "at": iso(e["created_at"])} for e in entries]}


# --- P2/P3 temporary-assistance disbursements -------------------------------------------------------

@router.get("/disbursements", summary="Filter by status, P3 deadline state, incomplete documents (先行救助)")
async def list_disbursements(app: App, principal: Staff, region_code: RegionQuery = None,
                             status: str | None = None,
                             deadline: Literal["ok", "at_risk", "breached"] | None = None,
                             documents_complete: bool | None = None,
                             limit: Annotated[int, Query(ge=1, le=500)] = 200) -> list[dict[str, Any]]:
    return await app.disbursements.list(principal, region_code=_scope(principal, region_code), status=status,
                                        deadline=deadline, documents_complete=documents_complete, limit=limit)


@router.get("/disbursements/{disbursement_id}")
async def get_disbursement(disbursement_id: IdPath, app: App, principal: Staff) -> dict[str, Any]:
    return await app.disbursements.get(principal, disbursement_id)


@router.post("/disbursements/{disbursement_id}/signoffs", status_code=201,
             summary="P2: one of three township sign-offs (county-level: county civil affairs + county finance)")
async def sign_disbursement(disbursement_id: IdPath, app: App, principal: Signer,
                            body: CommentIn | None = None) -> dict[str, Any]:
    return await app.disbursements.sign(principal, disbursement_id, body.comment if body else None)


@router.post("/disbursements/{disbursement_id}/documents-complete",
             summary="先行救助: the file was completed after the payout")
async def complete_documents(disbursement_id: IdPath, app: App, principal: DocumentClerk,
                             body: NoteIn | None = None) -> dict[str, Any]:
    return await app.disbursements.complete_documents(principal, disbursement_id, body.note if body else None)


@router.get("/payment-deadlines", summary="P3: open clocks (temporary assistance) with their state")
async def payment_deadlines(app: App, principal: Staff, region_code: RegionQuery = None,
                            state: Literal["ok", "at_risk", "breached"] | None = None,
                            today: Day | None = None) -> list[dict[str, Any]]:
    return await app.clocks.list(principal, region_code=_scope(principal, region_code), state=state,
                                 today=today or today_shanghai())


@router.post("/payment-deadlines/scan",
             summary="P3: raise payments.disbursement.deadline for clocks in the caller's region that got worse")
async def deadline_scan(app: App, principal: CountyStaff, body: ScanIn | None = None) -> dict[str, Any]:
    body = body or ScanIn()
    region = _scope(principal, body.region_code) or principal.region
    today = body.today or today_shanghai()
    return {"observed_on": today.isoformat(), "reported": await app.clocks.scan(today, region)}


@router.get("/cases/{case_id}/payment-deadline", summary="P3: the 5-working-day clock of a case")
async def payment_deadline(case_id: IdPath, app: App, principal: Staff) -> dict[str, Any]:
    return await app.clocks.get(case_id, principal)


# --- payments, beneficiaries ----------------------------------------------------------------------

@router.get("/payments")
async def list_payments(app: App, principal: Staff, region_code: RegionQuery = None, status: str | None = None,
                        month: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
                        person_id: Annotated[str | None, Query(max_length=18)] = None,
                        kind: Literal["benefit", "price_subsidy", "linshi"] | None = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                        offset: Annotated[int, Query(ge=0)] = 0) -> list[dict[str, Any]]:
    return await app.payouts.list(principal, region_code=_scope(principal, region_code), status=status,
                                  month=_month(month), person_id=person_id, kind=kind,
                                  limit=limit, offset=offset)


@router.get("/payments/{payment_id}")
async def get_payment(payment_id: IdPath, app: App, principal: Staff) -> dict[str, Any]:
    return await app.payouts.get(principal, payment_id)


@router.get("/beneficiaries/{person_id}")
async def get_beneficiary(person_id: Annotated[str, Path(max_length=18)], app: App,
                          principal: Staff) -> dict[str, Any]:
    return await app.payouts.beneficiary(principal, person_id)


@router.patch("/beneficiaries/{person_id}/account",
              summary="Set or correct the payee account; payments the bank refused are retried (new attempt)")
async def set_account(person_id: Annotated[str, Path(max_length=18)], body: AccountIn, app: App,
                      principal: AccountKeeper) -> dict[str, Any]:
    return await app.payouts.set_account(principal, person_id, account_number=body.account_number,
                                         account_name=body.account_name, bank_name=body.bank_name)


# --- P5 payroll --------------------------------------------------------------------------------------

@router.post("/payroll-runs", status_code=201, responses={200: {"description": "Nothing was missing: the latest run"}},
             summary="P5: pay one month of 低保/特困 in a county or below (re-runs add only what is missing)")
async def payroll_run(body: PayrollRunIn, app: App, principal: CountyStaff) -> JSONResponse:
    status, out = await app.payroll.run(principal, region_code=body.region_code, month=body.month)
    return JSONResponse(out, status_code=status)


@router.post("/price-subsidy-runs", status_code=201, responses={200: {"description": "Nothing was missing"}},
             summary="P5: 价格临时补贴, amount per person covered, as its own batch kind")
async def price_subsidy_run(body: PriceSubsidyRunIn, app: App, principal: CountyStaff) -> JSONResponse:
    status, out = await app.payroll.run(principal, region_code=body.region_code, month=body.month,
                                        kind="price_subsidy", amount_per_person_fen=to_fen(body.amount_per_person))
    return JSONResponse(out, status_code=status)


@router.get("/payroll-runs")
async def list_runs(app: App, principal: Staff, region_code: RegionQuery = None,
                    month: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None) -> list[dict[str, Any]]:
    return await app.payroll.list_runs(principal, region_code=_scope(principal, region_code),
                                       month=_month(month))


@router.get("/payroll-runs/{run_id}")
async def get_run(run_id: IdPath, app: App, principal: Staff) -> dict[str, Any]:
    return await app.payroll.get_run(principal, run_id)


# --- reconciliation ----------------------------------------------------------------------------

@router.get("/reconciliation", summary="Ledger vs payments vs bank confirmations; every difference listed")
async def reconciliation(app: App, principal: Finance,
                         region_code: Annotated[str, Query(pattern=r"^\d{12}$")],
                         from_: Annotated[Day, Query(alias="from")], to: Day) -> dict[str, Any]:
    if (to - from_).days > 366:
        raise InvalidInput.field("to", "a report covers at most one year")
    return await app.reconciliation.report(principal, region_code=region_code, first=from_, last=to)
