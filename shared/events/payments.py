"""Events published by payments (topics ``payments.disbursement``, ``payments.reserve``, ``payments.payment``)."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from shared.events.base import EventData
from shared.events.common import Program


class DisbursementPaid(EventData):
    """Money reached the bank for a decided case (P2/P3): the case's payout is done."""

    TYPE = "payments.disbursement.paid"
    disbursement_id: str
    case_id: str
    application_id: str
    program: Program
    region_code: str
    handling_region_code: str
    person_id: str
    amount: Decimal
    funded_from: Literal["township_reserve", "county_budget"]
    accepted_at: datetime
    paid_at: datetime
    pay_by: date
    within_time_limit: bool  # P3: ≤ 5 working days from acceptance


class DisbursementDeadline(EventData):
    """P3 clock: a payout is at risk (one working day left) or has breached its limit."""

    TYPE = "payments.disbursement.deadline"
    disbursement_id: str | None
    case_id: str
    handling_region_code: str
    state: Literal["at_risk", "breached"]
    pay_by: date
    observed_on: date


class ReserveFundAlert(EventData):
    """P4: 资金趴窝 (money idle for N days) or 以拨代支 (allocation booked as spent, no payouts)."""

    TYPE = "payments.reserve.alert"
    township_code: str
    kind: Literal["idle_funds", "allocation_booked_as_spent"]
    amount: Decimal
    since: date
    observed_on: date


class PaymentFlaggedForRecovery(EventData):
    """P5/M6: a payment made after the recorded date of death, to be recovered."""

    TYPE = "payments.payment.recovery_flagged"
    payment_id: str
    person_id: str
    amount: Decimal
    paid_on: date
    date_of_death: date


class PayrollRunCompleted(EventData):
    """P5: a monthly payroll (``benefit``) or price-subsidy (价格临时补贴) run created its payments
    and earmarked their money. One event per run; each payment then goes to the bank."""

    TYPE = "payments.payroll.completed"
    run_id: str
    region_code: str
    month: str  # YYYY-MM
    kind: Literal["benefit", "price_subsidy"]
    payments_created: int
    total_amount: Decimal
    completed_at: datetime
