"""Request bodies of monitoring's HTTP API (shape checks; rules live in domain/ and the services)."""
from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.monitoring import IdNumber


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WarningClose(_Strict):
    """线下核处 (M3): the result of the on-the-ground check; without one a warning stays open."""
    result: str = Field(min_length=1, max_length=32, description="included | not_eligible | other_assistance | "
                        "death_verified | death_not_confirmed | already_covered | unreachable_moved")
    note: str | None = Field(default=None, max_length=2000)
    verified_on: date | None = Field(default=None, description="Day of the visit (default: today)")


class EscalationScan(_Strict):
    today: date | None = Field(default=None, description="Observation day (Asia/Shanghai); default today")
    region_code: str | None = Field(default=None, pattern=r"^\d{12}$")


class TekunVisitIn(_Strict):
    """T3: a visit or call to a dispersed 特困 person (at least one a month)."""
    person_id: IdNumber
    visited_on: date
    method: Literal["visit", "phone"] = "visit"
    note: str | None = Field(default=None, max_length=2000)


class SupplyModeIn(_Strict):
    supply_mode: Literal["dispersed", "centralized"]
