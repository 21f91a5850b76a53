"""零报告 (I4): every village and township reports each month even when it found nobody;
the county sees who has not reported, against a registry it loads as data."""
from __future__ import annotations

from shared.events.intake import ZeroReportFiled
from tests.intake.conftest import at, events, intake
from tests.support import auth

COUNTY = "522701000000"
REGISTRY = {"regions": [
    {"code": "522701001000", "name": "甲镇"}, {"code": "522701001001", "name": "甲镇一村"},
    {"code": "522701001002", "name": "甲镇二村"}, {"code": "522701002000", "name": "乙镇"},
    {"code": "522701002001", "name": "乙镇一村"}]}


async def test_registry_reports_and_missing(database_url: str) -> None:
    async with intake(database_url) as (app, client):
        app.state.intake.clock = lambda: at("2026-11-24")
        county = auth("county_civil_affairs")
        # No registry yet: the county is told to load one.
        r = await client.get(f"/v1/zero-reports/missing?region_code={COUNTY}&period=2026-11", headers=county)
        assert r.status_code == 404 and "reporting-regions" in r.json()["detail"]
        bad = {"regions": [{"code": "522702001001"}, {"code": "522701000000"}, {"code": "522701001001"},
                           {"code": "522701001001"}]}
        r = await client.put(f"/v1/reporting-regions/{COUNTY}", json=bad, headers=county)
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["regions.0.code", "regions.1.code", "regions.3.code"]
        assert (await client.put(f"/v1/reporting-regions/{COUNTY}", json=REGISTRY,
                                 headers=auth("township_clerk"))).status_code == 403
        assert (await client.put("/v1/reporting-regions/522702000000", json=REGISTRY,
                                 headers=county)).status_code in (403, 422)
        r = await client.put(f"/v1/reporting-regions/{COUNTY}", json=REGISTRY, headers=county)
        assert r.status_code == 200 and len(r.json()["regions"]) == 5
        assert r.json()["regions"][1]["level"] == "village"

        village = auth("village_coordinator", region="522701001001")
        report = {"region_code": "522701001001", "period": "2026-11", "found_count": 0, "note": "本月未发现"}
        r = await client.post("/v1/zero-reports", json=report, headers=village)
        assert r.status_code == 201 and r.json()["found_count"] == 0
        assert (await client.post("/v1/zero-reports", json=report, headers=village)).status_code == 200
        r = await client.post("/v1/zero-reports", json={**report, "found_count": 2}, headers=village)
        assert r.status_code == 409
        # A coordinator reports only for their own village.
        r = await client.post("/v1/zero-reports", json={**report, "region_code": "522701001002"}, headers=village)
        assert r.status_code == 403
        r = await client.post("/v1/zero-reports", json={**report, "region_code": "522701002000", "found_count": 3},
                              headers=auth("township_clerk", region="522701002000"))
        assert r.status_code == 201
        for period, field in (("2026-13", "period"), ("2027-01", "period"), ("202611", "period")):
            r = await client.post("/v1/zero-reports", json={**report, "period": period}, headers=village)
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, period

        filed = await events(app, ZeroReportFiled.TYPE)
        assert [(e["data"]["region_code"], e["data"]["found_count"]) for e in filed] == [
            ("522701001001", 0), ("522701002000", 3)]
        assert filed[0]["subject"] == "522701001001:2026-11"

        r = await client.get(f"/v1/zero-reports/missing?region_code={COUNTY}&period=2026-11", headers=county)
        out = r.json()
        assert (out["expected"], out["filed"]) == (5, 2)
        assert [m["code"] for m in out["missing"]] == ["522701001000", "522701001002", "522701002001"]
        r = await client.get("/v1/zero-reports/missing?region_code=522701001000&period=2026-11",
                             headers=auth("township_office_director", region="522701001000"))
        assert [m["code"] for m in r.json()["missing"]] == ["522701001000", "522701001002"]
        r = await client.get(f"/v1/zero-reports/missing?region_code={COUNTY}&period=2026-10", headers=county)
        assert r.json()["filed"] == 0 and len(r.json()["missing"]) == 5
        r = await client.get(f"/v1/zero-reports/missing?region_code={COUNTY}&period=2026-11",
                             headers=auth("county_civil_affairs", region="522702000000"))
        assert r.status_code == 403
        r = await client.get("/v1/zero-reports?period=2026-11", headers=county)
        assert [x["region_code"] for x in r.json()] == ["522701001001", "522701002000"]
