"""Events published by intake (topic ``intake.application``)."""
from __future__ import annotations

from datetime import date, datetime

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
