"""Re-evaluation of current benefits (item 5): a new standard recomputes every active case of
the region in a background job and publishes eligibility.benefit.changed — raise / lower (D2,
D3), gradual_exit (D5) and stop (D1/D5) — each with a reason citing rule codes; unchanged
cases and other regions publish nothing; a partner fact on a decided case re-evaluates it."""
from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from services.eligibility.models import decisions
from services.eligibility.policies import today
from shared.events.eligibility import BenefitChanged
from tests.eligibility.helpers import (
    ALL_URLS, COUNTY, TOWNSHIP, Partners, app_for, deliver, events, member, publish, submitted, wait_job,
    wait_status,
)
from tests.support import OTHER_COUNTY, auth, running

CLERK = auth("township_clerk", COUNTY)
PROVINCE_OFFICER = auth("county_civil_affairs", "520000000000")
OTHER_TOWNSHIP = "522702001000"


async def decide(app, c, members, region: str = TOWNSHIP) -> str:
    case_id = await deliver(app, submitted(members, region=region))
    headers = auth("township_clerk", region[:6] + "000000")
    await wait_status(c, case_id, "proposed", headers=headers)
    r = await c.post(f"/v1/cases/{case_id}/decision", json={"action": "confirm"}, headers=headers)
    assert r.status_code == 201, r.text
    return case_id


async def test_new_standard_raises_lowers_exits_and_stops(database_url: str) -> None:
    """Urban standard 800 → 700, elderly tier 20% → 50%, marginal multiplier 1.5 → 1.05:
    A elderly, no income: 800 + 160 = 960 → 700 + 350 = 1050 (raise, D2/D3);
    B adult, no income: 800 → 700 (lower, D2);
    C adult, income 720: 80 → 700 ≤ 720 < 735 keeps 80 for 6 months (gradual_exit, D5);
    D adult, income 790: 10 → 790 ≥ 735 (stop, D5); E in another county: untouched."""
    app = app_for(database_url, Partners(), partner_verification_urls=ALL_URLS, reevaluation_batch_size=2)
    async with running(app) as c:
        await publish(c, COUNTY, "2026-01-01", {"dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00"},
                      PROVINCE_OFFICER)
        await publish(c, OTHER_COUNTY, "2026-01-01", {"dibao_standard_urban": "800.00",
                                                      "dibao_standard_rural": "600.00"}, PROVINCE_OFFICER)
        a = await decide(app, c, [member(date(1950, 3, 1), 1)])
        b = await decide(app, c, [member(date(1986, 5, 5), 2)])
        cc = await decide(app, c, [member(date(1986, 5, 5), 3, "720.00")])
        d = await decide(app, c, [member(date(1986, 5, 5), 4, "790.00")])
        e = await decide(app, c, [member(date(1986, 5, 5), 5, region6="522702")], region=OTHER_TOWNSHIP)
        assert await events(app, BenefitChanged.TYPE) == []

        v = await publish(c, COUNTY, "2026-06-01", {"dibao_standard_urban": "700.00",
                                                    "tier_rate_elderly_or_student": "0.50",
                                                    "marginal_multiplier": "1.05"}, PROVINCE_OFFICER)
        job = await wait_job(c, v["reevaluation_id"], CLERK)
        assert job["status"] == "done" and job["total"] == 4 and job["processed"] == 4
        assert job["counts"] | {} == {"changed": 4, "raised": 1, "lowered": 1, "gradual_exit": 1, "stopped": 1,
                                      "unchanged": 0, "needs_review": 0, "no_policy": 0, "proposals_refreshed": 0}
        assert job["progress"] == 1.0 and job["policy_version"] == v["id"]

        changes = {ev.case_id: ev for ev in await events(app, BenefitChanged.TYPE)}
        assert set(changes) == {a, b, cc, d}                                  # E publishes nothing
        assert (changes[a].change, changes[a].old_monthly_amount, changes[a].new_monthly_amount) == \
            ("raise", D("960.00"), D("1050.00"))
        assert (changes[b].change, changes[b].new_monthly_amount) == ("lower", D("700.00"))
        assert changes[cc].change == "gradual_exit" and changes[cc].new_monthly_amount == D("80.00")
        assert changes[cc].exit_until is not None and changes[cc].exit_until > today()
        assert changes[d].change == "stop" and changes[d].new_monthly_amount is None
        assert changes[d].covered_person_ids == [member(date(1986, 5, 5), 4)["person_id"]]
        for ev in changes.values():
            assert ev.policy_version == v["id"] and ev.effective_from == today() and ev.program == "dibao"
            assert "（D" in ev.reason and v["id"] in ev.reason
        assert "D3" in changes[a].reason and "D5" in changes[cc].reason and "D5" in changes[d].reason

        benefit = lambda cid: c.get(f"/v1/cases/{cid}", headers=CLERK)  # noqa: E731
        assert (await benefit(a)).json()["benefit"]["monthly_amount"] == "1050.00"
        assert (await benefit(cc)).json()["benefit"]["status"] == "exiting"
        assert (await benefit(d)).json()["benefit"]["status"] == "stopped"
        assert (await c.get(f"/v1/cases/{e}", headers=auth("township_clerk", OTHER_COUNTY))).json()["benefit"]["monthly_amount"] == "800.00"

        # each change is a stored, replayable decision
        async with app.state.runtime.session_factory() as s:
            import sqlalchemy as sa
            rid = await s.scalar(sa.select(decisions.c.id).where(decisions.c.case_id == a,
                                                                 decisions.c.kind == "reevaluation"))
        replay = (await c.get(f"/v1/decisions/{rid}/replay", headers=CLERK)).json()
        assert replay["equal"] is True and replay["replayed"]["assessment"]["monthly_amount"] == "1050.00"

        # the same rules again (a later version changing nothing): every case unchanged, no event
        v2 = await publish(c, COUNTY, "2026-07-01", {"marginal_multiplier": "1.05"}, PROVINCE_OFFICER)
        job2 = await wait_job(c, v2["reevaluation_id"], CLERK)
        assert job2["processed"] == 3 and job2["counts"]["unchanged"] == 3 and job2["counts"]["changed"] == 0
        assert len(await events(app, BenefitChanged.TYPE)) == 4


async def test_a_partner_fact_on_a_decided_case_reevaluates_it(database_url: str) -> None:
    """D1/D2: housing fund reveals 300.00 of wages: 960 → (800 − 300) + 160 = 660 (lower), at
    once; then a pension of 2,000 stops it (D5: ≥ 1.5 × standard). An officer's override is
    never changed automatically: it is flagged for review instead."""
    app = app_for(database_url, Partners(), partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        await publish(c, COUNTY, "2026-01-01", {"dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00"},
                      PROVINCE_OFFICER)
        elder = member(date(1950, 3, 1), 1)
        case_id = await decide(app, c, [elder])
        url = f"/v1/cases/{case_id}/facts"
        r = await c.post(url, headers=CLERK, json={"source": "housing_fund", "summary": "公积金缴存，工资约 300 元",
                                                   "monthly_incomes": {elder["person_id"]: "300.00"}})
        assert r.status_code == 201, r.text
        assert r.json()["reevaluation"]["change"] == "lower" and r.json()["benefit"]["monthly_amount"] == "660.00"
        r = await c.post(url, headers=CLERK, json={"source": "social_insurance", "summary": "养老金 2000 元",
                                                   "monthly_incomes": {elder["person_id"]: "2000.00"}})
        assert r.json()["reevaluation"]["change"] == "stop" and r.json()["benefit"]["status"] == "stopped"
        lower, stop = await events(app, BenefitChanged.TYPE)
        assert (lower.change, lower.old_monthly_amount, lower.new_monthly_amount) == ("lower", D("960.00"), D("660.00"))
        assert stop.change == "stop" and "D5" in stop.reason and "社会保险" in stop.reason

        other = member(date(1950, 3, 1), 9)
        overridden = await deliver(app, submitted([other]))
        await wait_status(c, overridden, "proposed", headers=CLERK)
        await c.post(f"/v1/cases/{overridden}/decision", headers=CLERK,
                     json={"action": "override", "outcome": "approved", "monthly_amount": "1000.00", "reason": "特殊困难"})
        r = await c.post(f"/v1/cases/{overridden}/facts", headers=CLERK, json={
            "source": "housing_fund", "summary": "工资 300", "monthly_incomes": {other["person_id"]: "300.00"}})
        assert r.json()["reevaluation"]["review_needed"] is True and r.json()["benefit"]["review_needed"] is True
        assert r.json()["benefit"]["monthly_amount"] == "1000.00"
        assert len(await events(app, BenefitChanged.TYPE)) == 2


async def test_a_future_version_is_reevaluated_on_its_day(tmp_path) -> None:
    """动态调整: a standard published ahead of its date leaves today's benefits alone; its job
    waits (pending, as of the effective date) until the rules are in force."""
    import asyncio

    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    async with running(app) as c:
        v = await publish(c, COUNTY, f"{today().year + 2}-01-01", {"dibao_standard_urban": "2000.00",
                                                    "dibao_standard_rural": "1800.00"}, PROVINCE_OFFICER)
        await asyncio.sleep(0.3)  # several worker polls
        job = (await c.get(f"/v1/reevaluations/{v['reevaluation_id']}", headers=CLERK)).json()
        assert job["status"] == "pending" and job["as_of"] == f"{today().year + 2}-01-01" and job["processed"] == 0
