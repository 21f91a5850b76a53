"""Events published by monitoring (topics ``monitoring.person``, ``monitoring.warning``,
``monitoring.comparison``) and the partner-department event contract (M2) that partner systems
either POST to monitoring (``POST /v1/partner-events``) or publish to the ``partner.events``
topic as :class:`PartnerEventReported`. JSON Schemas of the partner contract are exported under
``services/monitoring/schemas/partner-events/``."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from shared.events.base import EventData
from shared.idnumbers import InvalidIdNumber, validate_id_number
from shared.money import MoneyStr


class PersonDied(EventData):
    """M6 / P5: a death reported by civil registration or funeral records. Payments stops every
    benefit of this person at once and flags anything paid after ``date_of_death`` for recovery."""

    TYPE = "monitoring.person.died"
    person_id: str
    date_of_death: date
    source: str
    reported_at: datetime


# --- partner-department events (M2) ----------------------------------------------------------

PartnerEventType = Literal["death", "medical_expense", "unemployment", "disability_certified",
                           "school_enrollment", "poverty_monitoring"]
PARTNER_EVENT_TYPES: tuple[str, ...] = ("death", "medical_expense", "unemployment", "disability_certified",
                                        "school_enrollment", "poverty_monitoring")


def _id_number(value: str) -> str:
    try:
        return validate_id_number(value)
    except InvalidIdNumber as exc:
        raise ValueError(str(exc)) from None


IdNumber = Annotated[
    str, AfterValidator(_id_number),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{17}[0-9X]$", "minLength": 18, "maxLength": 18,
                    "description": "18-character 居民身份证号 (GB 11643 check digit)"}),
]
RegionCode = Annotated[str, Field(pattern=r"^\d{12}$", description="12-digit administrative region code")]


class _PartnerModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeathData(_PartnerModel):
    """Civil registration / funeral records (M6). ``occurred_on`` is the date of death."""
    record_source: Literal["civil_registration", "funeral", "hospital", "public_security"] | None = None
    certificate_no: str | None = Field(default=None, max_length=64)
    place_region_code: RegionCode | None = None


class MedicalExpenseData(_PartnerModel):
    """Medical insurance (因病): personal out-of-pocket expense (个人自付) settled on ``occurred_on``."""
    amount: MoneyStr = Field(description="Out-of-pocket amount in yuan")
    hospital: str | None = Field(default=None, max_length=200)
    diagnosis: str | None = Field(default=None, max_length=200)


class UnemploymentData(_PartnerModel):
    """Human resources and social security (因失业): registered unemployed on ``occurred_on``."""
    receives_unemployment_insurance: bool = False
    previous_employer: str | None = Field(default=None, max_length=200)


class DisabilityCertifiedData(_PartnerModel):
    """Disabled persons' federation (因残): a disability certificate issued on ``occurred_on``."""
    grade: Literal[1, 2, 3, 4]
    kind: Literal["physical", "visual", "hearing", "speech", "intellectual", "mental", "multiple"] | None = None
    certificate_no: str | None = Field(default=None, max_length=64)


class SchoolEnrollmentData(_PartnerModel):
    """Education (因学): enrolled on ``occurred_on``."""
    stage: Literal["preschool", "primary", "junior_secondary", "senior_secondary", "vocational", "higher"]
    school: str | None = Field(default=None, max_length=200)


class PovertyMonitoringData(_PartnerModel):
    """Rural revitalization (返贫监测): the person is in the poverty-monitoring population."""
    category: Literal["unstable_post_poverty", "at_risk_of_poverty"]
    region_code: RegionCode
    monthly_per_capita_income: MoneyStr | None = None
    labor_capacity: Literal["full", "partial", "none"] | None = None
    household_size: int | None = Field(default=None, ge=1, le=30)


class _PartnerEventBase(_PartnerModel):
    person_id: IdNumber
    occurred_on: date
    reference: str | None = Field(default=None, max_length=64, description="The partner's own record id")


class DeathReported(_PartnerEventBase):
    type: Literal["death"]
    data: DeathData = DeathData()


class MedicalExpenseReported(_PartnerEventBase):
    type: Literal["medical_expense"]
    data: MedicalExpenseData


class UnemploymentReported(_PartnerEventBase):
    type: Literal["unemployment"]
    data: UnemploymentData = UnemploymentData()


class DisabilityCertified(_PartnerEventBase):
    type: Literal["disability_certified"]
    data: DisabilityCertifiedData


class SchoolEnrollmentReported(_PartnerEventBase):
    type: Literal["school_enrollment"]
    data: SchoolEnrollmentData


class PovertyMonitoringReported(_PartnerEventBase):
    type: Literal["poverty_monitoring"]
    data: PovertyMonitoringData


PARTNER_EVENT_MODELS: dict[str, type[_PartnerEventBase]] = {
    "death": DeathReported, "medical_expense": MedicalExpenseReported, "unemployment": UnemploymentReported,
    "disability_certified": DisabilityCertified, "school_enrollment": SchoolEnrollmentReported,
    "poverty_monitoring": PovertyMonitoringReported,
}

PartnerEvent = Annotated[
    Union[DeathReported, MedicalExpenseReported, UnemploymentReported, DisabilityCertified,
          SchoolEnrollmentReported, PovertyMonitoringReported],
    Field(discriminator="type"),
]


class PartnerEventReported(EventData):
    """A partner department's system published one event directly to the ``partner.events``
    topic (the Kafka alternative to ``POST /v1/partner-events``). ``partner_id`` must own the
    event's type; the envelope's subject is the person id."""

    TYPE = "partner.events.reported"
    partner_id: str = Field(min_length=1, max_length=64)
    event: PartnerEvent


# --- warnings (M3–M6) --------------------------------------------------------------------------

WarningLevel = Literal[1, 2, 3]


class WarningRaised(EventData):
    """M3: a graded warning assigned to a township/village with a deadline (限时核查)."""

    TYPE = "monitoring.warning.raised"
    warning_id: int
    rule: str
    kind: str
    level: WarningLevel
    person_id: str
    region_code: str
    due_on: date
    due_provisional: bool = False
    raised_at: datetime
    source_type: str


class WarningEscalated(EventData):
    """M3: a warning not verified by its deadline was escalated to the county."""

    TYPE = "monitoring.warning.escalated"
    warning_id: int
    rule: str
    kind: str
    level: WarningLevel
    region_code: str
    escalated_to: str
    due_on: date
    observed_on: date


class WarningClosed(EventData):
    """M3: the on-the-ground check (入户排查) was done and its result recorded."""

    TYPE = "monitoring.warning.closed"
    warning_id: int
    rule: str
    kind: str
    person_id: str
    region_code: str
    result: str
    closed_at: datetime
    closed_by: str


class ComparisonCompleted(EventData):
    """M2: a monthly comparison file was processed (counts only; warnings follow their own events)."""

    TYPE = "monitoring.comparison.completed"
    file_id: str
    kind: str
    rows_total: int
    rows_ok: int
    rows_failed: int
    warnings_raised: int
    deaths_detected: int
    completed_at: datetime
