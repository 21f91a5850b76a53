"""Events published by eligibility (topic ``eligibility.case``)."""
from __future__ import annotations

from datetime import datetime

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
