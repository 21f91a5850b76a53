"""Events published by eligibility (topic ``eligibility.case``)."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from shared.events.base import EventData
from shared.events.common import Channel, Program


class CaseOpened(EventData):
    """A case was opened for an application; the means test and decision follow."""

    TYPE = "eligibility.case.opened"
    case_id: str
    application_id: str
    channel: Channel
    program: Program
    region_code: str
    handling_region_code: str
    applicant_person_id: str
    household_size: int
    received_at: datetime
    opened_at: datetime


class DecisionMade(EventData):
    """审核确认: a case was decided (D1–D6, T1–T2, L1–L5), confirmed or overridden by an officer.

    ``outcome``: approved / single_person / gradual_exit (a benefit is paid), denied, or
    transferred (转办 to another department, I2/L5: ``transfer_department`` says which).
    """

    TYPE = "eligibility.decision.made"
    decision_id: str
    case_id: str
    application_id: str
    program: Program
    channel: Channel
    region_code: str
    handling_region_code: str
    applicant_person_id: str
    covered_person_ids: list[str]
    outcome: Literal["approved", "single_person", "gradual_exit", "denied", "transferred"]
    monthly_amount: Decimal | None = None
    one_time_amount: Decimal | None = None
    approval_level: Literal["township", "county"]
    exit_months: int | None = None
    effective_from: date
    policy_version: str
    received_at: datetime
    decided_at: datetime
    decided_by: str
    overridden: bool = False
    transfer_department: str | None = None
    staged_payments: list[Decimal] | None = None  # 一次审批、分阶段救助 (L4): amounts per stage
    pay_first: bool = False  # 先行救助 (L4): pay now, complete the file afterwards
    reasons: list[str] = Field(default_factory=list)


class BenefitChanged(EventData):
    """Re-evaluation after a policy or partner-fact change: raise, lower, gradual exit (D5) or stop."""

    TYPE = "eligibility.benefit.changed"
    case_id: str
    program: Program
    region_code: str
    applicant_person_id: str
    covered_person_ids: list[str]
    change: Literal["raise", "lower", "gradual_exit", "stop", "unchanged"]
    old_monthly_amount: Decimal | None
    new_monthly_amount: Decimal | None
    effective_from: date
    exit_until: date | None = None
    policy_version: str
    reason: str
