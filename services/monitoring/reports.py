"""M7 reports: half-yearly (June/December, QN 三(一)) and quarterly (before the 20th of the
quarter's last month, GD 四(三)), one row per sub-region plus the region's total."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import sqlalchemy as sa

from shared.auth import Principal, ensure_region, region_prefix
from shared.errors import InvalidInput

from services.monitoring.regions import within
from services.monitoring.domain.periods import REPORT_KINDS, parse_period, report_due
from services.monitoring.domain.reports import COLUMNS, child_digits, report_row
from services.monitoring.indicators import IndicatorService
from services.monitoring.models import new_cases, register, reporting_units, warnings


class ReportService:
    def __init__(self, indicators: IndicatorService, clock: Callable[[], datetime]) -> None:
        self.indicators = indicators
        self.runtime = indicators.runtime
        self.clock = clock

    async def report(self, principal: Principal, kind: str, region_code: str, period_text: str) -> dict[str, Any]:
        if kind not in REPORT_KINDS:
            raise InvalidInput.field("kind", f"must be one of {', '.join(REPORT_KINDS)}")
        ensure_region(principal, region_code)
        try:
            period = parse_period(period_text)
        except ValueError as exc:
            raise InvalidInput.field("period", str(exc)) from None
        if period.kind != REPORT_KINDS[kind]:
            raise InvalidInput.field("period", "a quarterly report needs YYYY-Qn, a half-yearly one YYYY-Hn")
        prefix = region_prefix(region_code)
        digits = child_digits(len(prefix))
        async with self.runtime.session_factory() as s:
            children: list[str] = []
            if digits:
                found: set[str] = set()
                for col in (register.c.region_code, warnings.c.region_code, new_cases.c.region_code,
                            reporting_units.c.region_code):
                    q = sa.select(sa.func.substr(col, 1, digits)).where(within(col, prefix)).distinct()
                    found |= set((await s.execute(q)).scalars().all())
                children = sorted(c.ljust(12, "0") for c in found if c and len(c) == digits)
            rows = [report_row(await self.indicators.compute(s, child, period)) for child in children]
            total = report_row(await self.indicators.compute(s, region_code, period))
        return {"kind": kind, "rule": "M7", "region_code": region_code, "period": period.text,
                "from": period.start.isoformat(), "to": period.end.isoformat(), **report_due(kind, period),
                "generated_at": self.clock().isoformat(), "columns": list(COLUMNS), "rows": rows, "total": total}
