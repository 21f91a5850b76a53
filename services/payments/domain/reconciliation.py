"""Reconciliation (对账), pure: do the ledger, the payments and the bank's confirmations agree?

For every payment in scope the caller gathers what each source says:

- the payment record: its status and amount;
- the ledger: the amounts booked into ``bank_clearing`` for it (debits; credits are reversals);
- the bank: the amounts of the attempts it confirmed as accepted.

Differences reported (one entry each, with the payment id):

``paid_not_booked``       the bank confirmed it (or the payment says paid) but the ledger has no
                          paid booking;
``booked_not_confirmed``  the ledger books it as paid but the bank never confirmed it;
``amount_mismatch``       the three amounts are not all the same;
``duplicate_booking``     booked as paid more than once;
``duplicate_confirmation`` the bank confirmed more than one attempt;
``status_mismatch``       confirmed by the bank but the payment is not marked paid (or the reverse);
``duplicate_payment``     two payments for the same person, programme, kind and month.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PaymentFacts:
    payment_id: str
    status: str
    amount_fen: int
    booked_debits: list[int] = field(default_factory=list)
    booked_credits: list[int] = field(default_factory=list)
    confirmations: list[int] = field(default_factory=list)

    @property
    def booked_fen(self) -> int:
        return sum(self.booked_debits) - sum(self.booked_credits)


@dataclass(frozen=True)
class Difference:
    kind: str
    payment_id: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def differences(facts: Iterable[PaymentFacts]) -> list[Difference]:
    out: list[Difference] = []
    for f in facts:
        booked = f.booked_fen
        confirmed = bool(f.confirmations)
        data = {"status": f.status, "amount_fen": f.amount_fen, "booked_fen": booked,
                "confirmed_fen": sum(f.confirmations)}
        if (confirmed or f.status == "paid") and booked == 0:
            out.append(Difference("paid_not_booked", f.payment_id, "paid but not booked in the ledger", data))
        if booked != 0 and not confirmed:
            out.append(Difference("booked_not_confirmed", f.payment_id, "booked as paid without a bank confirmation",
                                  data))
        amounts = {f.amount_fen}
        if booked:
            amounts.add(booked)
        amounts.update(f.confirmations)
        if len(amounts) > 1 and (booked or confirmed):
            out.append(Difference("amount_mismatch", f.payment_id, "payment, ledger and bank amounts differ", data))
        if len(f.booked_debits) - len(f.booked_credits) > 1:
            out.append(Difference("duplicate_booking", f.payment_id, "booked as paid more than once", data))
        if len(f.confirmations) > 1:
            out.append(Difference("duplicate_confirmation", f.payment_id, "the bank confirmed more than one attempt",
                                  data))
        if confirmed != (f.status == "paid") and f.status not in ("sending", "unknown"):
            out.append(Difference("status_mismatch", f.payment_id,
                                  "bank confirmation and payment status disagree", data))
    return out


def duplicate_payments(rows: Iterable[tuple[str, str, str, str, str]]) -> list[Difference]:
    """``rows``: (payment_id, person_id, program, kind, month or '') of live payments."""
    groups: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for payment_id, person, program, kind, month in rows:
        if month:  # one-offs (临时救助 stages) legitimately repeat
            groups[(person, program, kind, month)].append(payment_id)
    out = []
    for (person, program, kind, month), ids in sorted(groups.items()):
        if len(ids) > 1:
            for pid in sorted(ids):
                out.append(Difference("duplicate_payment", pid,
                                      f"{len(ids)} {program} {kind} payments for one person in {month}",
                                      {"others": [i for i in sorted(ids) if i != pid], "month": month}))
    return out
