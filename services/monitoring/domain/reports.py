"""M7 report rows: the indicators of one region flattened into the report's columns (pure)."""
from __future__ import annotations

import csv
import io
from typing import Any

from services.monitoring.domain.categories import CATEGORIES

COLUMNS: tuple[str, ...] = (
    "region_code",
    *(f"register_{c}" for c in CATEGORIES),
    "new_cases", "active_discovery_cases", "active_discovery_share",
    "paid", "paid_within_limit", "paid_within_limit_share",
    "warnings_raised", "warnings_m3", "warnings_m4", "warnings_m6", "warnings_open", "warnings_overdue",
    "warnings_closed", "warnings_closed_included",
    "tekun_dispersed", "tekun_visited", "tekun_visit_share",
    "zero_reports_expected", "zero_reports_filed", "zero_report_share",
    "idle_funds_townships", "idle_funds_amount", "booked_as_spent_townships", "booked_as_spent_amount",
    "deaths_detected", "recoveries_flagged", "recovery_amount",
)


def report_row(ind: dict[str, Any]) -> dict[str, Any]:
    w = ind["warnings"]
    return {
        "region_code": ind["region_code"],
        **{f"register_{c}": ind["register"].get(c, 0) for c in CATEGORIES},
        "new_cases": ind["active_discovery"]["total_new_cases"],
        "active_discovery_cases": ind["active_discovery"]["active_discovery"],
        "active_discovery_share": ind["active_discovery"]["share"],
        "paid": ind["paid_within_limit"]["paid"],
        "paid_within_limit": ind["paid_within_limit"]["within_limit"],
        "paid_within_limit_share": ind["paid_within_limit"]["share"],
        "warnings_raised": w["raised"],
        "warnings_m3": w["raised_by_rule"].get("M3", 0),
        "warnings_m4": w["raised_by_rule"].get("M4", 0),
        "warnings_m6": w["raised_by_rule"].get("M6", 0),
        "warnings_open": w["open"], "warnings_overdue": w["overdue"],
        "warnings_closed": sum(w["closed_by_result"].values()),
        "warnings_closed_included": w["closed_by_result"].get("included", 0),
        "tekun_dispersed": ind["tekun_visits"]["dispersed"], "tekun_visited": ind["tekun_visits"]["visited"],
        "tekun_visit_share": ind["tekun_visits"]["share"],
        "zero_reports_expected": ind["zero_reports"]["expected"], "zero_reports_filed": ind["zero_reports"]["filed"],
        "zero_report_share": ind["zero_reports"]["share"],
        "idle_funds_townships": ind["reserve_funds"]["idle_funds"]["townships"],
        "idle_funds_amount": ind["reserve_funds"]["idle_funds"]["amount"],
        "booked_as_spent_townships": ind["reserve_funds"]["allocation_booked_as_spent"]["townships"],
        "booked_as_spent_amount": ind["reserve_funds"]["allocation_booked_as_spent"]["amount"],
        "deaths_detected": ind["deaths"]["detected"], "recoveries_flagged": ind["deaths"]["recoveries_flagged"],
        "recovery_amount": ind["deaths"]["recovery_amount"],
    }


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    return buf.getvalue()


def child_digits(significant: int) -> int | None:
    """Digits of the next level down: province 2 → city 4 → county 6 → township 9 → village 12."""
    return {2: 4, 4: 6, 6: 9, 9: 12}.get(significant)
