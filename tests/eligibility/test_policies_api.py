"""POST /v1/policies and GET /v1/policies/{region_code}?on=DATE (API.md, FIXED): who may
publish (county_civil_affairs inside the token's region), validation naming ``params.<key>``
with nothing stored, history never overwritten (409), inheritance from parent regions and
effective dates, the national defaults loaded once, EXAMPLE standards only when configured,
and the stale-standard flag (动态调整, SX 二(三)5)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from services.eligibility.models import policy_versions, reevaluations
from shared.audit import audit_log
from tests.eligibility.helpers import API_PARAMS, COUNTY, TOWNSHIP, app_for, count, publish
from tests.support import OTHER_COUNTY, auth, running

PROVINCE = "520000000000"
CITY = "522700000000"
VIEW_KEYS = {"region_code", "on", "policy_version", "complete", "missing", "params", "sources", "versions",
             "standard_adjusted_on", "stale", "stale_since", "stale_after_months", "example_data", "notice"}
VERSION_KEYS = {"id", "region_code", "effective_from", "params", "note", "example", "published_at", "published_by",
                "reevaluation_id"}


def policy(region: str = COUNTY, effective: str = "2026-01-01", **params: Any) -> dict[str, Any]:
    return {"region_code": region, "effective_from": effective,
            "params": params or {"dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00"}}


async def test_publish_needs_county_civil_affairs_inside_its_region(tmp_path: Path) -> None:
    """API.md Authentication: no/invalid token 401; wrong role or region outside the token 403."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    async with running(app) as c:
        before = await count(app, policy_versions)
        assert (await c.post("/v1/policies", json=policy())).status_code == 401
        r = await c.post("/v1/policies", json=policy(), headers={"Authorization": "Bearer x.y.z"})
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
        for role in ("township_clerk", "township_office_director", "county_finance", "monitoring_operator",
                     "applicant", "partner_system"):
            r = await c.post("/v1/policies", json=policy(), headers=auth(role))
            assert r.status_code == 403, role
        # a county token cannot publish for another county, nor for the province above it
        assert (await c.post("/v1/policies", json=policy(OTHER_COUNTY), headers=auth("county_civil_affairs"))).status_code == 403
        assert (await c.post("/v1/policies", json=policy(PROVINCE), headers=auth("county_civil_affairs"))).status_code == 403
        assert await count(app, policy_versions) == before and await count(app, reevaluations) == 0
        # a province token may publish for the province and anything inside it
        for region in (PROVINCE, COUNTY, TOWNSHIP):
            r = await c.post("/v1/policies", json=policy(region, tier_rate_family="0.15"),
                             headers=auth("county_civil_affairs", PROVINCE))
            assert r.status_code == 201, r.text


async def test_publish_rejects_each_bad_parameter_and_stores_nothing(tmp_path: Path) -> None:
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    county = auth("county_civil_affairs")
    bad = [
        ({"dibao_standard_urban": 800.0}, "params.dibao_standard_urban"),            # float
        ({"dibao_standard_urban": "-1.00"}, "params.dibao_standard_urban"),          # negative money
        ({"dibao_standard_rural": "abc"}, "params.dibao_standard_rural"),
        ({"dibao_standard_rural": "600.001"}, "params.dibao_standard_rural"),        # 3 places
        ({"tier_rate_severe": "1.5"}, "params.tier_rate_severe"),                    # rate > 1
        ({"marginal_multiplier": "0.9"}, "params.marginal_multiplier"),              # multiplier < 1
        ({"elderly_age": "60"}, "params.elderly_age"),                               # int as string
        ({"gradual_exit_months": -1}, "params.gradual_exit_months"),
        ({"approval_delegated_to_township": "yes"}, "params.approval_delegated_to_township"),
        ({"standard": "800.00"}, "params.standard"),                                 # unknown key
    ]
    async with running(app) as c:
        before = await count(app, policy_versions)
        for params, field in bad:
            r = await c.post("/v1/policies", json={"region_code": COUNTY, "effective_from": "2026-01-01",
                                                   "params": {"dibao_standard_urban": "800.00", **params}},
                             headers=county)
            assert r.status_code == 422, (params, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert field in [e["field"] for e in r.json()["errors"]], (params, r.json())
        for payload, field in [
            ({**policy(), "params": {}}, "params"),
            ({**policy(), "params": ["x"]}, "params"),
            ({**policy(), "region_code": "52270100000"}, "region_code"),
            ({**policy(), "effective_from": "2026-02-30"}, "effective_from"),
            ({**policy(), "effective_from": "1999-12-31"}, "effective_from"),
            ({**policy(), "extra": 1}, "extra"),
            ({"region_code": COUNTY, "params": {"dibao_standard_urban": "800.00"}}, "effective_from"),
        ]:
            r = await c.post("/v1/policies", json=payload, headers=county)
            assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]], (payload, r.text)
        assert await count(app, policy_versions) == before and await count(app, reevaluations) == 0


async def test_publish_shape_history_conflict_and_audit(tmp_path: Path) -> None:
    """History is never overwritten: the same region and date again → 200 with the stored
    version when identical (a retry), 409 when different; who published is kept and audited."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    county = auth("county_civil_affairs", sub="officer-7")
    async with running(app) as c:
        r = await c.post("/v1/policies", json={**policy(**API_PARAMS), "note": "黔南州民发〔2026〕1号（测试）"},
                         headers=county)
        assert r.status_code == 201, r.text
        v = r.json()
        assert set(v) == VERSION_KEYS
        assert v["id"] == "pv-522701000000-20260101" and v["params"] == API_PARAMS and v["example"] is False
        assert v["published_by"] == {"sub": "officer-7", "name": "测试", "role": "county_civil_affairs"}
        assert v["reevaluation_id"]
        again = await c.post("/v1/policies", json={**policy(**API_PARAMS), "note": "retry"}, headers=county)
        assert again.status_code == 200 and again.json()["id"] == v["id"] and again.json()["reevaluation_id"] is None
        clash = await c.post("/v1/policies", json=policy(dibao_standard_urban="900.00"), headers=county)
        assert clash.status_code == 409 and clash.json()["existing_version"]["id"] == v["id"]
        history = (await c.get(f"/v1/policies/{TOWNSHIP}/versions", headers=auth("township_clerk"))).json()
        assert [x["id"] for x in history["versions"]] == ["pv-000000000000-20200101", v["id"]]
        assert (await c.get(f"/v1/policies/{TOWNSHIP}/versions")).status_code == 401
        async with app.state.runtime.session_factory() as s:
            entries = (await s.execute(sa.select(audit_log).where(audit_log.c.entity_id == v["id"])
                                       .order_by(audit_log.c.seq))).mappings().all()
        assert [e["action"] for e in entries] == ["policy.published"] and entries[0]["actor"] == "officer-7"
        verify = await c.get("/v1/audit/verify", headers=auth("county_civil_affairs"))
        assert verify.json()["ok"] is True


async def test_inheritance_and_effective_dates_through_the_api(tmp_path: Path) -> None:
    """API.md: parameters not given are inherited from the nearest parent region's version in
    force; the county's yearly adjustment takes effect on its date (动态调整)."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    prov = auth("county_civil_affairs", PROVINCE)
    async with running(app) as c:
        v_prov = await publish(c, PROVINCE, "2025-01-01", {"tier_rate_severe": "0.35",
                                                           "dibao_standard_rural": "550.00"}, prov)
        v1 = await publish(c, COUNTY, "2026-01-01", {"dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00"},
                           prov)
        v2 = await publish(c, COUNTY, "2026-07-01", {"dibao_standard_urban": "850.00"}, prov)
        v_town = await publish(c, TOWNSHIP, "2026-03-01", {"tier_flat_mild_disability": "80.00"}, prov)

        early = (await c.get(f"/v1/policies/{TOWNSHIP}", params={"on": "2025-06-01"})).json()
        assert set(early) == VIEW_KEYS
        assert early["complete"] is False and early["missing"] == ["dibao_standard_urban"]
        assert early["params"]["dibao_standard_rural"] == "550.00" and early["sources"]["dibao_standard_rural"] == v_prov["id"]
        assert early["standard_adjusted_on"] is None and early["stale"] is False

        spring = (await c.get(f"/v1/policies/{TOWNSHIP}", params={"on": "2026-03-01"})).json()
        assert spring["complete"] is True and spring["policy_version"] == v_town["id"]
        assert spring["params"]["dibao_standard_urban"] == "800.00" and spring["sources"]["dibao_standard_urban"] == v1["id"]
        assert spring["params"]["tier_rate_severe"] == "0.35" and spring["sources"]["tier_rate_severe"] == v_prov["id"]
        assert spring["params"]["tier_flat_mild_disability"] == "80.00"
        assert spring["sources"]["elderly_age"] == "pv-000000000000-20200101" and spring["params"]["elderly_age"] == 60
        assert spring["standard_adjusted_on"] == "2026-01-01"
        assert {x["id"] for x in spring["versions"]} == {v_town["id"], v1["id"], v_prov["id"], "pv-000000000000-20200101"}

        summer = (await c.get(f"/v1/policies/{TOWNSHIP}", params={"on": "2026-08-01"})).json()
        assert summer["params"]["dibao_standard_urban"] == "850.00" and summer["sources"]["dibao_standard_urban"] == v2["id"]
        assert summer["params"]["dibao_standard_rural"] == "600.00" and summer["sources"]["dibao_standard_rural"] == v1["id"]
        assert summer["standard_adjusted_on"] == "2026-07-01"
        # the county itself does not see its township's own parameter
        county_view = (await c.get(f"/v1/policies/{COUNTY}", params={"on": "2026-08-01"})).json()
        assert county_view["params"]["tier_flat_mild_disability"] == "70.00"
        # bad inputs
        assert (await c.get("/v1/policies/5227", params={"on": "2026-08-01"})).status_code == 422
        r = await c.get(f"/v1/policies/{COUNTY}", params={"on": "2026-02-30"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "on"


async def test_defaults_load_once_and_example_standards_only_when_configured(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/e.db"
    async with running(app_for(url)) as c:
        view = (await c.get(f"/v1/policies/{COUNTY}", params={"on": "2026-11-01"})).json()
        assert view["complete"] is False and set(view["missing"]) == {"dibao_standard_urban", "dibao_standard_rural"}
        assert view["policy_version"] == "pv-000000000000-20200101" and view["example_data"] is False
    for _ in range(2):  # restarting loads nothing twice
        app = app_for(url, load_example_standards=True)
        async with running(app) as c:
            view = (await c.get(f"/v1/policies/{TOWNSHIP}", params={"on": "2026-11-01"})).json()
            assert view["complete"] is True and view["example_data"] is True and "EXAMPLE" in view["notice"]
            assert view["params"]["dibao_standard_urban"] == "800.00"
            assert await count(app, policy_versions) == 2


async def test_stale_standard_flag_and_operator_list(tmp_path: Path) -> None:
    """A 低保 standard not adjusted for more than 12 months on the date asked is flagged and
    listed for operators (动态调整, SX 二(三)5) — never silently carried forward."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    prov = auth("county_civil_affairs", PROVINCE)
    async with running(app) as c:
        await publish(c, COUNTY, "2025-01-01", {"dibao_standard_urban": "780.00", "dibao_standard_rural": "580.00"}, prov)
        await publish(c, OTHER_COUNTY, "2025-01-01", {"dibao_standard_urban": "760.00", "dibao_standard_rural": "560.00"}, prov)
        await publish(c, OTHER_COUNTY, "2026-01-01", {"dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00"}, prov)
        on_anniversary = (await c.get(f"/v1/policies/{TOWNSHIP}", params={"on": "2026-01-01"})).json()
        assert on_anniversary["stale"] is False                         # exactly 12 months: not yet
        stale = (await c.get(f"/v1/policies/{TOWNSHIP}", params={"on": "2026-01-02"})).json()
        assert stale["stale"] is True and stale["stale_since"] == "2026-01-01"
        assert (await c.get(f"/v1/policies/{OTHER_COUNTY}", params={"on": "2026-03-01"})).json()["stale"] is False

        r = await c.get("/v1/policies-stale", params={"region_code": PROVINCE, "on": "2026-03-01"},
                        headers=auth("monitoring_operator", PROVINCE))
        assert r.status_code == 200
        listed = r.json()["regions"]
        assert [x["region_code"] for x in listed] == [COUNTY]
        assert listed[0]["standard_adjusted_on"] == "2025-01-01" and listed[0]["dibao_standard_urban"] == "780.00"
        # a county operator sees its own county by default; another county is outside its token
        own = (await c.get("/v1/policies-stale", params={"on": "2026-03-01"}, headers=auth("county_civil_affairs"))).json()
        assert [x["region_code"] for x in own["regions"]] == [COUNTY]
        assert (await c.get("/v1/policies-stale", params={"region_code": OTHER_COUNTY},
                            headers=auth("county_civil_affairs"))).status_code == 403
        assert (await c.get("/v1/policies-stale")).status_code == 401
        assert (await c.get("/v1/policies-stale", headers=auth("applicant"))).status_code == 403


async def test_a_stored_proposal_resolves_as_its_publication_left_it_without_a_query(tmp_path: Path) -> None:
    """A decision checks the proposal against the versions published up to the proposal's
    sequence number: a version published later does not count, and a snapshot that already
    holds that sequence answers without a database round trip (versions are only appended)."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    prov = auth("county_civil_affairs", PROVINCE)
    async with running(app) as c:
        await publish(c, COUNTY, "2026-01-01", {"dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00"}, prov)
        policies = app.state.policies
        seq_then = (await policies.snapshot()).max_seq
        await publish(c, COUNTY, "2026-02-01", {"dibao_standard_urban": "900.00"}, prov)
        await policies.snapshot()  # the cache now holds both
        statements: list[str] = []
        engine = app.state.runtime.engine.sync_engine
        listen = lambda *a: statements.append(a[2])  # noqa: E731
        sa.event.listen(engine, "before_cursor_execute", listen)
        try:
            from datetime import date
            _, then = await policies.as_of_publication(TOWNSHIP, date(2026, 3, 1), seq_then)
            _, now = await policies.as_of_publication(TOWNSHIP, date(2026, 3, 1), None)
        finally:
            sa.event.remove(engine, "before_cursor_execute", listen)
        assert then is not None and then.params.dibao_standard_urban == 800
        assert now is not None and now.params.dibao_standard_urban == 900
        # only the call without a sequence asked the database (background loops may run meanwhile)
        assert len([q for q in statements if "policy_versions" in q]) == 1
