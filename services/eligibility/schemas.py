"""Request bodies of the eligibility API (pydantic; unknown fields are refused, enums are
Literals, money is ``MoneyStr``: decimal strings, never floats, never negative)."""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, WithJsonSchema, field_validator

from shared.idnumbers import InvalidIdNumber, validate_id_number
from shared.money import MoneyStr

from services.eligibility.domain.means_test import SOURCES

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(v: Any) -> date:
    if isinstance(v, date) and not isinstance(v, datetime):
        return v
    if isinstance(v, str) and _ISO_DATE.fullmatch(v):
        try:
            return date.fromisoformat(v)
        except ValueError:
            raise ValueError("is not a calendar date") from None
    raise ValueError("must be a date written YYYY-MM-DD")


# A date exactly as API.md writes it (no timestamps, no numbers).
StrictDate = Annotated[date, BeforeValidator(_iso_date), WithJsonSchema({"type": "string", "format": "date"})]
Grade = Annotated[int, Field(strict=True, ge=1, le=4)]
Months = Annotated[int, Field(strict=True, ge=1, le=120)]
Capacity = Literal["full", "partial", "none"]
DisabilityKind = Literal["physical", "visual", "hearing", "speech", "intellectual", "mental", "multiple"]
Source = Literal["hukou", "social_insurance", "vehicles", "real_estate", "housing_fund", "bank_deposits"]
Department = Literal["medical", "education", "housing", "employment", "rural_revitalization", "other"]
assert tuple(Source.__args__) == SOURCES  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _id(v: Any) -> str:
    try:
        return validate_id_number(v)
    except InvalidIdNumber as exc:
        raise ValueError(str(exc)) from None


# -- POST /v1/assessments (API.md, FIXED) -------------------------------------------------------

class MemberIn(_Strict):
    person_id: str
    birth_date: StrictDate
    monthly_income: MoneyStr = Decimal("0.00")
    disability_grade: Grade | None = None
    disability_kind: DisabilityKind | None = None
    serious_illness: StrictBool = False
    in_school: StrictBool = False
    labor_capacity: Capacity = "full"
    self_care: Capacity = "full"

    _valid_id = field_validator("person_id")(classmethod(lambda cls, v: _id(v)))


class HouseholdIn(_Strict):
    members: list[MemberIn] = Field(min_length=1, max_length=50)
    rigid_expenses_monthly: MoneyStr = Decimal("0.00")
    employment_costs_monthly: MoneyStr = Decimal("0.00")
    single_parent: StrictBool = False
    only_child: StrictBool = False
    pure_daughter: StrictBool = False
    land_lost: StrictBool = False
    assets_within_limits: StrictBool = True
    has_able_legal_supporter: StrictBool = False


class CurrentBenefitIn(_Strict):
    monthly_amount: MoneyStr


class HardshipIn(_Strict):
    kind: Literal["emergency", "expense"]
    months: Months = 1
    expense_amount: MoneyStr | None = None


class AssessmentIn(_Strict):
    program: Literal["dibao", "tekun", "linshi"]
    region_code: str
    area: Literal["urban", "rural"]
    as_of: StrictDate
    household: HouseholdIn
    current_benefit: CurrentBenefitIn | None = None
    hardship: HardshipIn | None = None


# -- POST /v1/policies (API.md, FIXED) ----------------------------------------------------------

class PolicyIn(_Strict):
    region_code: str
    effective_from: StrictDate
    params: dict[str, Any]
    note: str | None = Field(default=None, max_length=1000,
                             description="The document that sets these figures (e.g. the county's notice number)")


# -- POST /v1/cases/{id}/facts ------------------------------------------------------------------

class FactIn(_Strict):
    """One source's result of the means test (经济状况核对), recorded by hand or pushed by a partner."""
    source: Source
    assets_within_limits: StrictBool | None = Field(
        default=None, description="false when this source found assets above the local limits; null when it does not speak to assets")
    monthly_incomes: dict[str, MoneyStr] = Field(default_factory=dict, max_length=50,
                                                 description="person_id → monthly income this source found")
    summary: str = Field(min_length=1, max_length=2000, description="what the source showed (for the file)")
    reference: str | None = Field(default=None, max_length=200, description="document or query reference")


# -- POST /v1/cases/{id}/decision ---------------------------------------------------------------

class DecisionIn(_Strict):
    """审核确认: confirm the proposed decision, or override it with a reason (both audited)."""
    action: Literal["confirm", "override"]
    outcome: Literal["approved", "single_person", "gradual_exit", "denied", "transferred"] | None = None
    monthly_amount: MoneyStr | None = None
    one_time_amount: MoneyStr | None = None
    covered_person_ids: list[str] | None = Field(default=None, max_length=50)
    exit_months: Months | None = None
    reason: str | None = Field(default=None, max_length=2000)
    transfer_department: Department | None = Field(
        default=None, description="转办 (I2, L5): with a denied outcome the case is transferred to this department")
    staged_payments: list[MoneyStr] | None = Field(
        default=None, min_length=1, max_length=12, description="一次审批、分阶段救助 (L4): linshi amounts per stage")
    pay_first: StrictBool = Field(default=False, description="先行救助 (L4): pay now, complete the file afterwards")


CaseId = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
                              description="the case's id (a UUID)")]


class DecisionBatchItem(DecisionIn):
    """One case of a 批量审核 batch: its id and the same body as ``POST /v1/cases/{id}/decision``."""
    case_id: CaseId


class DecisionBatchIn(_Strict):
    """批量审核: an officer confirms (or overrides) several cases of the work list in one request."""
    decisions: list[DecisionBatchItem] = Field(min_length=1, max_length=100)
