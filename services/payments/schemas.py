"""Request bodies of the payments API (shape checks; the rules live in the use cases and domain/)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.money import MoneyStr

RegionCode = Field(pattern=r"^\d{12}$", description="12-digit administrative region code (行政区划代码)")
Month = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM", examples=["2026-11"])


def positive_fen(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be more than 0.00")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("must have at most two decimal places (fen)")
    return value


PositiveMoney = Annotated[MoneyStr, AfterValidator(positive_fen)]


def sane_day(value: date) -> date:
    if not date(2000, 1, 1) <= value <= date(2100, 12, 31):
        raise ValueError("must be a day between 2000-01-01 and 2100-12-31")
    return value


Day = Annotated[date, AfterValidator(sane_day)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppropriationIn(_Strict):
    county_code: str = RegionCode
    amount: PositiveMoney
    reference: str = Field(min_length=1, max_length=100, description="Budget document number (预算指标文号)")
    note: str | None = Field(default=None, max_length=2000)


class AllocationIn(_Strict):
    """P1 联合行文预拨: county → township reserve, once both county roles approved."""
    township_code: str = RegionCode
    amount: PositiveMoney
    reference: str = Field(min_length=1, max_length=100, description="Joint document number (联合行文文号)")
    note: str | None = Field(default=None, max_length=2000)


class CommentIn(_Strict):
    comment: str | None = Field(default=None, max_length=500)


class NoteIn(_Strict):
    note: str | None = Field(default=None, max_length=2000)


class ReimbursementIn(_Strict):
    """P4 报账列支: a township reports a period's spending from its reserve."""
    township_code: str = RegionCode
    period_from: Day
    period_to: Day
    amount: PositiveMoney
    note: str | None = Field(default=None, max_length=2000)


class AccountIn(_Strict):
    account_number: str = Field(pattern=r"^[0-9]{8,30}$", description="Bank card / 一卡通 account number")
    account_name: str | None = Field(default=None, max_length=100)
    bank_name: str | None = Field(default=None, max_length=100)


class PayrollRunIn(_Strict):
    region_code: str = RegionCode
    month: str = Month


class PriceSubsidyRunIn(_Strict):
    region_code: str = RegionCode
    month: str = Month
    amount_per_person: PositiveMoney


class ScanIn(_Strict):
    today: Day | None = Field(default=None, description="The day to evaluate (Asia/Shanghai); default today")
    region_code: str | None = Field(default=None, pattern=r"^\d{12}$")
