"""Request and response bodies of intake's HTTP API (shape checks only; rules live in domain/)."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.idnumbers import InvalidIdNumber, validate_id_number
from shared.money import MoneyStr

_CHINA_TIME = timezone(timedelta(hours=8))
_EARLIEST_BIRTH = date(1900, 1, 1)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")


def canonical_id_number(v: object) -> bool:
    """True for a number ``shared.idnumbers.validate_id_number`` would return unchanged: 17 ASCII
    digits and the right GB 11643 check character, a real birth date from 1900 to today. The
    hot path's shortcut (the stdnum route costs a tenth of a millisecond); anything else goes
    through the kernel function, which normalises or explains. Tests hold the two equal."""
    if not isinstance(v, str) or not _ID_SHAPE.match(v):
        return False
    if _ID_CHECK[sum(int(c) * w for c, w in zip(v, _ID_WEIGHTS)) % 11] != v[17]:
        return False
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return False
    return _EARLIEST_BIRTH <= born <= datetime.now(_CHINA_TIME).date()


RegionCode = Field(pattern=r"^\d{12}$", description="12-digit administrative region code (行政区划代码)")
Relation = Literal["applicant", "spouse", "child", "parent", "sibling", "grandparent", "grandchild", "other"]
DisabilityKind = Literal["physical", "visual", "hearing", "speech", "intellectual", "mental", "multiple"]
Department = Literal["medical", "education", "housing", "employment", "rural_revitalization", "other"]
DeadlineState = Literal["on_time", "at_risk", "overdue"]
StaffRole = Literal["hotline_operator", "village_coordinator", "township_clerk", "township_office_director",
                    "township_office_leader", "township_finance_leader", "county_civil_affairs"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberIn(_Strict):
    person_id: str = Field(description="18-character 居民身份证号 (GB 11643 check digit)")
    name: str | None = Field(default=None, max_length=50)
    relation: Relation = "other"
    birth_date: date
    monthly_income: MoneyStr = Decimal("0.00")
    disability_grade: Literal[1, 2, 3, 4] | None = None
    disability_kind: DisabilityKind | None = None
    serious_illness: bool = False
    in_school: bool = False
    labor_capacity: Literal["full", "partial", "none"] = "full"
    self_care: Literal["full", "partial", "none"] = "full"

    @field_validator("person_id")
    @classmethod
    def _valid_id(cls, v: str) -> str:
        if canonical_id_number(v):
            return v
        try:
            return validate_id_number(v)  # normalises (full-width, x, spaces) and says what is wrong
        except InvalidIdNumber as exc:
            raise ValueError(str(exc)) from None


class HouseholdIn(_Strict):
    members: list[MemberIn] = Field(min_length=1, max_length=30)
    rigid_expenses_monthly: MoneyStr = Decimal("0.00")
    employment_costs_monthly: MoneyStr = Decimal("0.00")
    single_parent: bool = False
    only_child: bool = False
    pure_daughter: bool = False
    land_lost: bool = False
    assets_within_limits: bool | None = Field(default=None, description="Declared; verified by the means test")
    has_able_legal_supporter: bool = False


class HardshipIn(_Strict):
    kind: Literal["emergency", "expense"]
    months: int = Field(default=1, ge=1, le=6)
    expense_amount: MoneyStr | None = None
    occurred_on: date | None = None
    place_region_code: str | None = Field(default=None, pattern=r"^\d{12}$",
                                          description="Where the hardship happened (L1: that township handles it)")
    description: str | None = Field(default=None, max_length=2000)


class DiscoveryIn(_Strict):
    """主动发现 (I1): who found the person, where and when."""
    found_by_name: str = Field(min_length=1, max_length=50)
    found_by_role: Literal["village_cadre", "grid_worker", "assistance_coordinator", "resident", "other"]
    found_at: datetime
    place: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=2000)


class ApplicationCreate(_Strict):
    channel: Literal["hotline_12345", "e_jiuzhu", "window", "active_discovery"]
    channel_ref: str | None = Field(default=None, max_length=64,
                                    description="12345 work-order number, e救助 request id, …")
    program: Literal["dibao", "tekun", "linshi"]
    region_code: str = RegionCode
    area: Literal["urban", "rural"]
    household: HouseholdIn
    hardship: HardshipIn | None = None
    discovery: DiscoveryIn | None = None
    documents: list[str] = Field(default_factory=list, max_length=50)


class DocumentsSupplied(_Strict):
    documents: list[str] = Field(min_length=1, max_length=50)


class HandoffIn(_Strict):
    """首问负责 (I3): the owner hands the case to a named colleague, with the reason."""
    to_sub: str = Field(min_length=1, max_length=64)
    to_role: StaffRole
    reason: str = Field(min_length=1, max_length=500)


class TransferIn(_Strict):
    """转办 (I2): hand the application to another department. ``close`` (default) ends the
    application here; ``close: false`` is a parallel referral (协同办理) that keeps it open."""
    department: Department
    reason: str = Field(min_length=1, max_length=1000)
    close: bool = True


class DeadlineScanIn(_Strict):
    on: date | None = Field(default=None, description="The day to scan as (default: today in Asia/Shanghai)")


class StepOut(BaseModel):
    step: str
    at: datetime
    actor: str
    detail: str | None = None


class DocumentOut(BaseModel):
    code: str
    name: str


class MemberOut(BaseModel):
    person_id: str
    name: str | None = None
    relation: str


class TransferOut(BaseModel):
    transfer_id: str
    department: str
    reason: str
    source: str
    closes_application: bool
    actor: str
    at: datetime


class DecisionOut(BaseModel):
    decision_id: str
    outcome: str
    monthly_amount: str | None = None
    one_time_amount: str | None = None


class ApplicationOut(BaseModel):
    application_id: str
    status: str
    channel: str
    channel_ref: str | None
    program: str
    region_code: str
    handling_region_code: str
    applicant_person_id: str
    missing_documents: list[DocumentOut]
    received_at: datetime
    due_by: date
    due_by_provisional: bool
    case_id: str | None
    owner: str
    owner_role: str | None = None
    step_due_by: date | None = None
    step_due_by_provisional: bool = False
    deadline_state: str = "on_time"
    decision: DecisionOut | None = None
    closed_at: datetime | None = None
    members: list[MemberOut] = Field(default_factory=list)
    transfers: list[TransferOut] = Field(default_factory=list)
    timeline: list[StepOut] = Field(default_factory=list)


class ApplicationSummary(BaseModel):
    application_id: str
    status: str
    channel: str
    program: str
    region_code: str
    handling_region_code: str
    applicant_person_id: str
    received_at: datetime
    due_by: date
    step_due_by: date | None
    deadline_state: DeadlineState
    owner: str


class ApplicationList(BaseModel):
    on: date
    items: list[ApplicationSummary]


class DeadlineScanOut(BaseModel):
    on: date
    region_code: str
    overdue: int
    at_risk: int
    events_emitted: int
    recomputed: int


# -- 12345 calls -------------------------------------------------------------------------

class HotlineCallIn(_Strict):
    work_order: str = Field(min_length=1, max_length=64, description="12345 work-order number (工单号)")
    kind: Literal["inquiry", "complaint", "application_request"]
    text: str = Field(min_length=1, max_length=4000)
    region_code: str = RegionCode


class HotlineAnswerIn(_Strict):
    text: str = Field(min_length=1, max_length=4000)
    outcome: Literal["answered", "resolved", "referred", "not_applicable"] = "answered"


class HotlineCallOut(BaseModel):
    call_id: str
    work_order: str
    kind: str
    text: str
    region_code: str
    handler_region_code: str
    handler_department: str
    state: str
    received_at: datetime
    received_by: str
    due_by: date
    due_by_provisional: bool
    answered_at: datetime | None = None
    answered_by: str | None = None
    answer_outcome: str | None = None
    answer_text: str | None = None


class ChannelFeedbackOut(BaseModel):
    feedback_id: int
    application_id: str | None
    hotline_call_id: str | None
    channel: str
    work_order: str
    region_code: str
    outcome: str
    text: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


# -- zero reports ----------------------------------------------------------------------------

class ZeroReportIn(_Strict):
    region_code: str = RegionCode
    period: str = Field(description="YYYY-MM")
    found_count: int = Field(ge=0, le=100000)
    note: str | None = Field(default=None, max_length=2000)


class ZeroReportOut(BaseModel):
    region_code: str
    period: str
    found_count: int
    note: str | None
    filed_by: str
    filed_at: datetime


class ReportingRegionIn(_Strict):
    code: str = RegionCode
    name: str | None = Field(default=None, max_length=100)


class ReportingRegionsIn(_Strict):
    regions: list[ReportingRegionIn] = Field(min_length=1, max_length=5000)


class ReportingRegionOut(BaseModel):
    code: str
    name: str | None
    level: str


class ReportingRegionsOut(BaseModel):
    county_code: str
    regions: list[ReportingRegionOut]


class MissingZeroReportsOut(BaseModel):
    region_code: str
    period: str
    expected: int
    filed: int
    missing: list[ReportingRegionOut]
