"""零报告 (I4): each village and township reports every month, even with nobody found; the
county sees who has not reported. The expected reporters are data: a registry per county."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shared.auth import Principal, county_of, region_level, region_prefix
from shared.calendar import to_shanghai_date
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.events.intake import ZeroReportFiled

from services.intake.domain.validation import region_problem
from services.intake.domain.zero_reports import missing_regions, period_problem
from services.intake.models import reporting_regions, zero_reports
from services.intake.schemas import (
    MissingZeroReportsOut, ReportingRegionOut, ReportingRegionsIn, ReportingRegionsOut, ZeroReportIn, ZeroReportOut)
from services.intake.service import IntakeService


class ZeroReportService:
    def __init__(self, intake: IntakeService) -> None:
        self.intake = intake
        self.runtime = intake.runtime

    async def file(self, body: ZeroReportIn, principal: Principal) -> tuple[int, ZeroReportOut]:
        """201 and ``intake.zero_report.filed``; 200 when the same report is sent again;
        409 when the region already reported the period with other figures."""
        now = self.intake.clock()
        problems = []
        if (p := region_problem(body.region_code)) is not None:
            problems.append(("region_code", p))
        if (p := period_problem(body.period, today=to_shanghai_date(now))) is not None:
            problems.append(("period", p))
        if problems:
            raise InvalidInput("; ".join(f"{f}: {m}" for f, m in problems),
                               errors=[{"field": f, "message": m} for f, m in problems])
        if not principal.covers(body.region_code):
            raise Forbidden(f"region {body.region_code} is outside this token's region {principal.region}")
        row = {"region_code": body.region_code, "period": body.period, "found_count": body.found_count,
               "note": body.note, "filed_by": f"{principal.role}:{principal.sub}", "filed_at": now}
        try:
            async with self.runtime.uow() as tx:
                await tx.session.execute(zero_reports.insert().values(row))
                tx.emit(ZeroReportFiled(region_code=body.region_code, period=body.period,
                                        found_count=body.found_count, filed_at=now),
                        subject=f"{body.region_code}:{body.period}")
        except IntegrityError:
            async with self.runtime.session_factory() as s:
                existing = (await s.execute(sa.select(zero_reports).where(
                    zero_reports.c.region_code == body.region_code,
                    zero_reports.c.period == body.period))).mappings().first()
            if existing is None:
                raise
            if (existing["found_count"], existing["note"]) != (body.found_count, body.note):
                raise Conflict(f"{body.region_code} already reported {body.period} "
                               f"(found {existing['found_count']})",
                               errors=[{"field": "period", "message": "already reported for this region"}])
            return 200, _report_out(existing)
        return 201, _report_out(row)

    async def list(self, principal: Principal, *, region_code: str | None, period: str | None) -> list[ZeroReportOut]:
        scope = region_code or principal.region
        if not principal.covers(scope):
            raise Forbidden(f"region {scope} is outside this token's region {principal.region}")
        q = sa.select(zero_reports).where(zero_reports.c.region_code.like(region_prefix(scope) + "%"))
        if period:
            q = q.where(zero_reports.c.period == period)
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(q.order_by(zero_reports.c.period.desc(), zero_reports.c.region_code)
                                    .limit(5000))).mappings().all()
        return [_report_out(r) for r in rows]

    async def load_regions(self, county_code: str, body: ReportingRegionsIn, principal: Principal) -> ReportingRegionsOut:
        """Replace the county's registry of villages and townships that must report."""
        if (p := region_problem(county_code, lowest_level="county")) is not None or region_level(county_code) != "county":
            raise InvalidInput.field("county_code", p or "must be a county (6 significant digits)")
        if not principal.covers(county_code):
            raise Forbidden(f"region {county_code} is outside this token's region {principal.region}")
        errors, seen = [], set()
        for i, r in enumerate(body.regions):
            if (p := region_problem(r.code)) is not None:
                errors.append({"field": f"regions.{i}.code", "message": p})
            elif county_of(r.code) != county_code:
                errors.append({"field": f"regions.{i}.code", "message": f"is not inside county {county_code}"})
            elif r.code in seen:
                errors.append({"field": f"regions.{i}.code", "message": "listed twice"})
            seen.add(r.code)
        if errors:
            raise InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)
        now = self.intake.clock()
        rows = [{"county_code": county_code, "region_code": r.code, "name": r.name, "level": region_level(r.code),
                 "loaded_by": f"{principal.role}:{principal.sub}", "loaded_at": now} for r in body.regions]
        async with self.runtime.session_factory() as s, s.begin():
            await s.execute(reporting_regions.delete().where(reporting_regions.c.county_code == county_code))
            await s.execute(reporting_regions.insert(), rows)
        return ReportingRegionsOut(county_code=county_code, regions=[
            ReportingRegionOut(code=r["region_code"], name=r["name"], level=r["level"]) for r in rows])

    async def regions(self, county_code: str, principal: Principal) -> ReportingRegionsOut:
        if not principal.covers(county_code) and not principal.covers(county_code[:6] + "0" * 6):
            raise Forbidden(f"region {county_code} is outside this token's region {principal.region}")
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(sa.select(reporting_regions).where(reporting_regions.c.county_code == county_code)
                                    .order_by(reporting_regions.c.region_code))).mappings().all()
        if not rows:
            raise NotFound(f"no reporting regions loaded for county {county_code}")
        return ReportingRegionsOut(county_code=county_code, regions=[
            ReportingRegionOut(code=r["region_code"], name=r["name"], level=r["level"]) for r in rows])

    async def missing(self, principal: Principal, *, region_code: str, period: str) -> MissingZeroReportsOut:
        """Expected reporters under ``region_code`` (a county or a township) without a report for ``period``."""
        problems = []
        if (p := region_problem(region_code, lowest_level="county")) is not None:
            problems.append(("region_code", p))
        if (p := period_problem(period, today=to_shanghai_date(self.intake.clock()))) is not None:
            problems.append(("period", p))
        if problems:
            raise InvalidInput("; ".join(f"{f}: {m}" for f, m in problems),
                               errors=[{"field": f, "message": m} for f, m in problems])
        if not principal.covers(region_code):
            raise Forbidden(f"region {region_code} is outside this token's region {principal.region}")
        county = county_of(region_code)
        prefix = region_prefix(region_code) + "%"
        async with self.runtime.session_factory() as s:
            expected = (await s.execute(sa.select(reporting_regions).where(
                reporting_regions.c.county_code == county,
                reporting_regions.c.region_code.like(prefix)))).mappings().all()
            if not expected:
                raise NotFound(f"no reporting regions loaded for county {county} "
                               f"(PUT /v1/reporting-regions/{county})")
            filed = (await s.execute(sa.select(zero_reports.c.region_code).where(
                zero_reports.c.period == period, zero_reports.c.region_code.like(prefix)))).scalars().all()
        by_code = {r["region_code"]: r for r in expected}
        gaps = missing_regions(by_code, filed)
        return MissingZeroReportsOut(
            region_code=region_code, period=period, expected=len(by_code), filed=len(by_code) - len(gaps),
            missing=[ReportingRegionOut(code=c, name=by_code[c]["name"], level=by_code[c]["level"]) for c in gaps])


def _report_out(r: Mapping[str, Any]) -> ZeroReportOut:
    return ZeroReportOut(region_code=r["region_code"], period=r["period"], found_count=r["found_count"],
                         note=r["note"], filed_by=r["filed_by"], filed_at=r["filed_at"])
