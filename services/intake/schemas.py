"""Request and response bodies of intake's HTTP API (shape checks only; rules live in domain/)."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.idnumbers import InvalidIdNumber, validate_id_number
from shared.money import MoneyStr

RegionCode = Field(pattern=r"^\d{12}$", description="12-digit administrative region code (行政区划代码)")
Relation = Literal["applicant", "spouse", "child", "parent", "sibling", "grandparent", "grandchild", "other"]
DisabilityKind = Literal["physical", "visual", "hearing", "speech", "intellectual", "mental", "multiple"]


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
        try:
            return validate_id_number(v)
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


class StepOut(BaseModel):
    step: str
    at: datetime
    actor: str
    detail: str | None = None


class DocumentOut(BaseModel):
    code: str
    name: str


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
    timeline: list[StepOut] = Field(default_factory=list)
