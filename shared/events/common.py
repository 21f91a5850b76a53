"""Payload parts used by more than one event."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

Program = Literal["dibao", "tekun", "linshi"]
Area = Literal["urban", "rural"]
Channel = Literal["hotline_12345", "e_jiuzhu", "window", "active_discovery"]


class MemberData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    person_id: str
    name: str | None = None
    relation: str | None = None
    birth_date: date
    monthly_income: Decimal = Decimal("0")
    disability_grade: int | None = None
    disability_kind: str | None = None
    serious_illness: bool = False
    in_school: bool = False
    labor_capacity: Literal["full", "partial", "none"] = "full"
    self_care: Literal["full", "partial", "none"] = "full"


class HouseholdData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    members: list[MemberData]
    rigid_expenses_monthly: Decimal = Decimal("0")
    employment_costs_monthly: Decimal = Decimal("0")
    single_parent: bool = False
    only_child: bool = False
    pure_daughter: bool = False
    land_lost: bool = False
    assets_within_limits: bool | None = None
    has_able_legal_supporter: bool = False


class HardshipData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["emergency", "expense"]
    months: int = 1
    expense_amount: Decimal | None = None
    occurred_on: date | None = None
    place_region_code: str | None = None
    description: str | None = None
