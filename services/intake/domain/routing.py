"""分办 and 转办 (I2, L1, L5): who handles an application or a 12345 call, and where a case
goes when social assistance is not the answer."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from shared.auth import county_of, region_level, township_of

_DATA = Path(__file__).resolve().parent.parent / "data"
_HOTLINE = _DATA / "hotline_routing.json"

# Departments an application may be transferred to (转办): the values of
# ApplicationTransferred.department.
DEPARTMENTS = ("medical", "education", "housing", "employment", "rural_revitalization", "other")


def handling_township(program: str, region_code: str, hardship_place: str | None) -> str:
    """低保/特困 go to the township of residence; 临时救助 to the township where the hardship
    happened — no hukou or residence restriction (L1)."""
    if program == "linshi" and hardship_place:
        return township_of(hardship_place)
    return township_of(region_code)


def dispatch_reason(program: str, region_code: str, hardship_place: str | None) -> str:
    township = handling_township(program, region_code, hardship_place)
    if program == "linshi" and hardship_place:
        return f"to township {township}, where the hardship happened (L1)"
    return f"to township {township}, of residence"


def transfer_for_decision(outcome: str, transfer_department: str | None) -> str | None:
    """转办 after a decision: ``transferred`` goes to the named department; ``denied`` goes to
    rural revitalization for those not eligible (I2, L5); anything else stays here."""
    if outcome == "denied":
        return "rural_revitalization"
    if outcome == "transferred":
        return transfer_department if transfer_department in DEPARTMENTS else "other"
    return None


@lru_cache(maxsize=1)
def hotline_routes() -> dict[str, dict[str, str]]:
    raw = json.loads(_HOTLINE.read_text(encoding="utf-8"))
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def hotline_handler(kind: str, region_code: str) -> tuple[str, str]:
    """(handler region, department) for a 12345 call from ``region_code``. A township-level
    route falls back to the county when the caller only gave a county."""
    route = hotline_routes()[kind]
    if route["level"] == "township" and region_level(region_code) in ("township", "village"):
        return township_of(region_code), route["department"]
    if route["level"] == "township":
        return county_of(region_code), "county_civil_affairs_office"
    return county_of(region_code), route["department"]
