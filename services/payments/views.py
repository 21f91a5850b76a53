"""Response shapes: money as "1234.50" yuan strings, account numbers masked except for the
roles that pay (township_finance_leader, county_finance), identity numbers as privacy says."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from shared.money import format_yuan, from_fen
from shared.privacy import present_id

from services.payments.domain import signoffs as so

ACCOUNT_ROLES = frozenset({"township_finance_leader", "county_finance"})


def yuan(fen: int | None) -> str | None:
    return None if fen is None else format_yuan(from_fen(int(fen)))


def iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def present_account(row: Any, role: str, reveal: Callable[[str], str] | None) -> str | None:
    """A stored account (accounts.py columns): in full for the paying roles, decrypted here and
    only here (``reveal``: token → number); masked for everybody else, without decrypting."""
    if row is None:
        return None
    if role in ACCOUNT_ROLES and reveal is not None:
        return reveal(row["account_enc"])
    return str(row["account_masked"])


def payment_view(p: Any, role: str, attempts: Sequence[Any] = (), recovery: Any = None,
                 reveal: Callable[[str], str] | None = None) -> dict[str, Any]:
    """``reveal`` decrypts this payment's attempt accounts (bound to the payment's person)."""
    out = {
        "payment_id": p["id"], "kind": p["kind"], "program": p["program"], "status": p["status"],
        "person_id": present_id(p["person_id"], role), "region_code": p["region_code"],
        "amount": yuan(p["amount_fen"]), "source_account": p["source_account"],
        "month": p["month"].strftime("%Y-%m") if p["month"] else None,
        "entitlement_id": p["entitlement_id"], "disbursement_id": p["disbursement_id"], "stage": p["stage"],
        "run_id": p["run_id"], "attempt": p["attempt"], "release_on": iso(p["release_on"]),
        "reject_reason": p["reject_reason"], "last_error": p["last_error"],
        "created_at": iso(p["created_at"]), "paid_at": iso(p["paid_at"]),
    }
    if attempts:
        out["attempts"] = [{
            "attempt": a["attempt"], "idempotency_key": a["idempotency_key"],
            "account_number": present_account(a, role, reveal), "account_name": a["account_name"],
            "amount": yuan(a["amount_fen"]), "requested_at": iso(a["requested_at"]), "sends": a["sends"],
            "answered_at": iso(a["answered_at"]), "outcome": a["outcome"], "reason": a["reason"],
            "bank_ref": a["bank_ref"], "last_error": a["last_error"]} for a in attempts]
    if recovery is not None:
        out["recovery"] = {"status": recovery["status"], "date_of_death": iso(recovery["date_of_death"]),
                           "paid_on": iso(recovery["paid_on"]), "flagged_at": iso(recovery["flagged_at"])}
    return out


def signoff_view(r: Any) -> dict[str, Any]:
    return {"role": r["role"], "signer": {"sub": r["signer_sub"], "name": r["signer_name"]},
            "signed_at": iso(r["signed_at"]), "comment": r["comment"]}


def disbursement_view(d: Any, signs: Sequence[Any], stages: Sequence[Any], *, today: date,
                      state_on: Callable[[date, date], str], role: str = "township_clerk") -> dict[str, Any]:
    required = so.required_roles(d["approval_level"])
    given = [so.Signoff(r["role"], r["signer_sub"]) for r in signs]
    paid = d["first_paid_at"] is not None
    return {
        "disbursement_id": d["id"], "decision_id": d["decision_id"], "case_id": d["case_id"],
        "application_id": d["application_id"], "program": d["program"], "status": d["status"],
        "region_code": d["region_code"], "handling_region_code": d["handling_region_code"],
        "approval_level": d["approval_level"], "funded_from": d["funded_from"],
        "source_account": d["source_account"], "person_id": present_id(d["person_id"], role),
        "amount": yuan(d["amount_fen"]), "pay_first": d["pay_first"],
        "documents_complete": d["documents_complete"], "documents_completed_at": iso(d["documents_completed_at"]),
        "documents_completed_by": d["documents_completed_by"],
        "signoffs_required": list(required), "signoffs_missing": so.missing(required, given),
        "signoffs": [signoff_view(r) for r in signs],
        "received_at": iso(d["received_at"]), "pay_by": iso(d["pay_by"]),
        "pay_by_provisional": d["pay_by_provisional"], "signed_at": iso(d["signed_at"]),
        "first_paid_at": iso(d["first_paid_at"]),
        "deadline": {"rule": "P3", "pay_by": iso(d["pay_by"]),
                     "state": ("paid" if paid else "stopped" if d["status"] == "suspended"
                               else state_on(today, d["pay_by"]))},
        "stages": [{"stage": p["stage"], "payment_id": p["id"], "amount": yuan(p["amount_fen"]),
                    "status": p["status"], "release_on": iso(p["release_on"]), "paid_at": iso(p["paid_at"])}
                   for p in stages],
    }
