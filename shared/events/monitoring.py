"""Events published by monitoring (topics ``monitoring.person``, ``monitoring.warning``)."""
from __future__ import annotations

from datetime import date, datetime

from shared.events.base import EventData


class PersonDied(EventData):
    """M6 / P5: a death reported by civil registration or funeral records. Payments stops every
    benefit of this person at once and flags anything paid after ``date_of_death`` for recovery."""

    TYPE = "monitoring.person.died"
    person_id: str
    date_of_death: date
    source: str
    reported_at: datetime
