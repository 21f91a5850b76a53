"""Events published by intake (topic ``intake.application``)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from shared.events.base import EventData
from shared.events.common import Area, Channel, HardshipData, HouseholdData, Program


class ApplicationSubmitted(EventData):
    """申请受理: an application was accepted at one of the doors (I1) and dispatched (I2)."""

    TYPE = "intake.application.submitted"
    application_id: str
    channel: Channel
    channel_ref: str | None = None
    program: Program
    region_code: str
    handling_region_code: str
    area: Area
    applicant_person_id: str
    household: HouseholdData
    hardship: HardshipData | None = None
    documents_complete: bool
    received_at: datetime
    due_by: date
    due_by_provisional: bool = False


class ApplicationDeadline(EventData):
    """限时办理 (I3): an application is at risk of missing, or has missed, its time limit."""

    TYPE = "intake.application.deadline"
    application_id: str
    program: Program
    channel: Channel
    handling_region_code: str
    state: Literal["at_risk", "overdue"]
    due_by: date
    observed_on: date


class ApplicationTransferred(EventData):
    """转办 (I2, L5): handed to another department (medical, education, housing, employment
    assistance; rural revitalization for those not eligible)."""

    TYPE = "intake.application.transferred"
    application_id: str
    department: Literal["medical", "education", "housing", "employment", "rural_revitalization", "other"]
    region_code: str
    applicant_person_id: str
    reason: str
    transferred_at: datetime


class ZeroReportFiled(EventData):
    """零报告 (I4): a village or township reported for a period, even with nobody found."""

    TYPE = "intake.zero_report.filed"
    region_code: str
    period: str  # YYYY-MM
    found_count: int
    filed_at: datetime
