"""Real applications (intake.application.submitted) through the means test (经济状况核对, SX 二(四)2)
to an officer's decision (D6, L4) and eligibility.decision.made: partners answering, timing
out or not configured (never silently approved), manual facts, confirm/override (audited),
转办 (I2/L5), staged payments (L4), replay, and one decision per application."""
from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import sqlalchemy as sa

from services.eligibility.models import case_facts, cases, decisions
from services.eligibility.policies import today
from shared.audit import audit_log, seal_all
from shared.events.eligibility import DecisionMade
from tests.eligibility.helpers import (
    ALL_URLS, COUNTY, TOWNSHIP, Partners, app_for, count, deliver, events, member, publish, submitted, wait_status,
)
from tests.support import auth, running

CLERK = auth("township_clerk", TOWNSHIP)
DIRECTOR = auth("township_office_director", TOWNSHIP)
COUNTY_OFFICER = auth("county_civil_affairs")
STANDARDS = {"dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00"}
ELDER = member(date(1950, 3, 1), 1, "100.00", labor_capacity="none")


async def _standards(c) -> dict:
    return await publish(c, COUNTY, "2026-01-01", STANDARDS, COUNTY_OFFICER)


async def test_partners_answer_then_confirm_emits_decision_made_and_replays(database_url: str) -> None:
    """D1: social insurance finds a 300.00 pension (declared 100.00): (800 − 300) + 20% × 800 = 660.00
    (D2, D3); D6: a township-level confirmation; DecisionMade carries every field; replay equal."""
    partners = Partners(answers={"social_insurance": {"assets_within_limits": None, "summary": "养老金 300 元/月",
                                                      "monthly_incomes": {ELDER["person_id"]: "300.00"},
                                                      "reference": "SI-1"}})
    app = app_for(database_url, partners, partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        version = await _standards(c)
        data = submitted([ELDER])
        case_id = await deliver(app, data)
        case = await wait_status(c, case_id, "proposed", headers=CLERK)
        assert case["pending_sources"] == [] and len(case["facts"]) == 6
        assert {f["source"] for f in case["facts"]} == set(ALL_URLS)
        assert case["means_test"]["monthly_incomes"] == {ELDER["person_id"]: "300.00"}
        assert case["proposal"]["assessment"]["monthly_amount"] == "660.00"
        assert case["proposal"]["approval_level"] == "township" and case["proposal"]["policy_version"] == version["id"]
        assert {call["source"] for call in partners.calls} == set(ALL_URLS)
        assert all(call["persons"][0]["person_id"] == ELDER["person_id"] for call in partners.calls)

        r = await c.post(f"/v1/cases/{case_id}/decision", json={"action": "confirm"}, headers=DIRECTOR)
        assert r.status_code == 201, r.text
        decision = r.json()
        assert decision == (await c.get(f"/v1/decisions/{decision['decision_id']}", headers=DIRECTOR)).json()
        assert decision["outcome"] == "approved" and decision["monthly_amount"] == "660.00"
        assert decision["decided_by"] == {"sub": "township_office_director-test", "name": "测试",
                                          "role": "township_office_director"}
        assert decision["assessment"]["breakdown"][0]["code"] == "D2"

        [made] = await events(app, DecisionMade.TYPE)
        assert made.decision_id == decision["decision_id"] and made.case_id == case_id
        assert made.application_id == data.application_id and made.program == "dibao" and made.channel == "window"
        assert made.region_code == made.handling_region_code == TOWNSHIP
        assert made.applicant_person_id == ELDER["person_id"] and made.covered_person_ids == [ELDER["person_id"]]
        assert made.outcome == "approved" and made.monthly_amount == D("660.00") and made.one_time_amount is None
        assert made.approval_level == "township" and made.exit_months is None
        assert made.effective_from == today() and made.policy_version == version["id"]
        assert made.received_at == data.received_at and made.decided_by == "township_office_director-test"
        assert made.overridden is False and made.transfer_department is None
        assert made.staged_payments is None and made.pay_first is False
        assert any(x.startswith("D1:") for x in made.reasons) and any(x.startswith("D2") or "D6" in x for x in made.reasons)

        case = (await c.get(f"/v1/cases/{case_id}", headers=CLERK)).json()
        assert case["status"] == "decided" and case["benefit"]["monthly_amount"] == "660.00"
        assert case["benefit"]["status"] == "active"

        replay = (await c.get(f"/v1/decisions/{decision['decision_id']}/replay", headers=CLERK)).json()
        assert replay["equal"] is True and replay["differences"] == []
        assert replay["replayed"]["assessment"] == replay["stored"]["assessment"]
        assert replay["replayed"]["policy_version"] == version["id"]
        # a later retroactive version does not change what the decision saw
        await publish(c, COUNTY, "2026-02-01", {"dibao_standard_urban": "900.00"}, COUNTY_OFFICER)
        replay = (await c.get(f"/v1/decisions/{decision['decision_id']}/replay", headers=CLERK)).json()
        assert replay["equal"] is True and replay["versions_published_later_for_that_day"]
        # masked for monitoring operators, hidden from other regions
        seen = (await c.get(f"/v1/decisions/{decision['decision_id']}", headers=auth("monitoring_operator"))).json()
        assert ELDER["person_id"] not in str(seen)
        assert (await c.get(f"/v1/decisions/{decision['decision_id']}",
                            headers=auth("township_clerk", "522702001000"))).status_code == 404


async def test_a_partner_that_times_out_leaves_the_case_awaiting_verification(tmp_path: Path) -> None:
    """Never silently approved: bank_deposits does not answer → awaiting_verification, the
    source named; a decision is refused (409); the clerk's manual entry completes it."""
    partners = Partners(answers={"bank_deposits": "timeout"})
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db", partners, partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        await _standards(c)
        case_id = await deliver(app, submitted([ELDER]))
        case = await wait_status(c, case_id, "awaiting_verification", headers=CLERK)
        assert case["pending_sources"] == ["bank_deposits"]
        assert case["verification"]["bank_deposits"]["state"] == "timeout"
        assert case["verification"]["hukou"]["state"] == "answered"
        assert case["proposal"] is None
        r = await c.post(f"/v1/cases/{case_id}/decision", json={"action": "confirm"}, headers=CLERK)
        assert r.status_code == 409 and r.json()["pending_sources"] == ["bank_deposits"]
        # the problem's "status" is its HTTP status (RFC 9457); the case's own is beside it
        assert r.json()["status"] == 409 and r.json()["case_status"] == "awaiting_verification"
        assert await events(app, DecisionMade.TYPE) == []

        r = await c.post(f"/v1/cases/{case_id}/facts", headers=CLERK, json={
            "source": "bank_deposits", "assets_within_limits": True, "summary": "银行存款 2,000 元，未超限额",
            "reference": "人工核对 2026-001"})
        assert r.status_code == 201, r.text
        case = r.json()
        assert case["status"] == "proposed" and case["proposal"]["assessment"]["monthly_amount"] == "860.00"
        manual = [f for f in case["facts"] if f["origin"] == "manual"]
        assert manual[0]["recorded_by"]["role"] == "township_clerk"


async def test_unconfigured_sources_wait_for_manual_entries(tmp_path: Path) -> None:
    """No PARTNER_VERIFICATION_URLS: every source is "not configured", nothing is guessed; the
    clerk's six entries decide it — here a vehicle above the limits denies 低保 (D1)."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    async with running(app) as c:
        await _standards(c)
        case_id = await deliver(app, submitted([ELDER]))
        case = await wait_status(c, case_id, "awaiting_verification", headers=CLERK)
        assert case["pending_sources"] == list(ALL_URLS)
        assert {v["state"] for v in case["verification"].values()} == {"not_configured"}
        url = f"/v1/cases/{case_id}/facts"
        # only staff of the case's region with a fact-recording role; members of the household only
        fact = {"source": "vehicles", "assets_within_limits": False, "summary": "名下小汽车一辆（超限额）"}
        assert (await c.post(url, json=fact, headers=auth("monitoring_operator"))).status_code == 403
        assert (await c.post(url, json=fact, headers=auth("township_clerk", "522702001000"))).status_code == 404
        r = await c.post(url, headers=CLERK, json={**fact, "monthly_incomes": {"110101199003078515": "10.00"}})
        assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("monthly_incomes.")
        r = await c.post(url, headers=CLERK, json={**fact, "source": "tax"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "source"
        assert (await c.post(url, headers=CLERK, json={"source": "vehicles"})).status_code == 422  # summary required
        assert await count(app, case_facts) == 0
        for source in ALL_URLS:
            body = fact if source == "vehicles" else {"source": source, "summary": f"{source}: 无记录"}
            r = await c.post(url, json=body, headers=CLERK)
            assert r.status_code == 201, r.text
        case = r.json()
        assert case["status"] == "proposed" and case["means_test"]["assets_within_limits"] is False
        assert case["proposal"]["assessment"]["outcome"] == "denied"
        r = await c.post(f"/v1/cases/{case_id}/decision", json={"action": "confirm"}, headers=CLERK)
        [made] = await events(app, DecisionMade.TYPE)
        assert r.status_code == 201 and made.outcome == "denied" and made.monthly_amount is None
        assert made.covered_person_ids == []


async def test_override_needs_a_reason_and_is_audited(database_url: str) -> None:
    """审核确认 by an officer: an override without a reason is refused (422) and changes nothing;
    with one it is stored, audited (who, role, when, why) and published as overridden."""
    app = app_for(database_url, Partners(), partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        await _standards(c)
        case_id = await deliver(app, submitted([ELDER]))
        await wait_status(c, case_id, "proposed", headers=CLERK)
        url = f"/v1/cases/{case_id}/decision"
        for body, field in [({"action": "override", "outcome": "approved", "monthly_amount": "900.00"}, "reason"),
                            ({"action": "override", "outcome": "approved", "monthly_amount": "900.00", "reason": "  "},
                             "reason"),
                            ({"action": "override", "reason": "x"}, "outcome"),
                            ({"action": "override", "outcome": "approved", "reason": "x"}, "monthly_amount"),
                            ({"action": "override", "outcome": "approved", "monthly_amount": "-1", "reason": "x"},
                             "monthly_amount"),
                            ({"action": "override", "outcome": "single_person", "monthly_amount": "900.00",
                              "covered_person_ids": ["nobody"], "reason": "x"}, "covered_person_ids.0"),
                            ({"action": "confirm", "monthly_amount": "900.00"}, "monthly_amount"),
                            ({"action": "approve"}, "action")]:
            r = await c.post(url, json=body, headers=CLERK)
            assert r.status_code == 422, (body, r.text)
            assert field in [e["field"] for e in r.json()["errors"]], (body, r.json())
        assert (await c.post(url, json={"action": "confirm"}, headers=auth("township_office_leader", TOWNSHIP))).status_code == 403
        assert (await c.get(f"/v1/cases/{case_id}", headers=CLERK)).json()["status"] == "proposed"
        assert await count(app, decisions) == 0 and await events(app, DecisionMade.TYPE) == []

        r = await c.post(url, headers=CLERK, json={"action": "override", "outcome": "approved",
                                                   "monthly_amount": "900.00", "reason": "入户核查：长期卧床，护理支出大"})
        assert r.status_code == 201, r.text
        d = r.json()
        assert d["overridden"] is True and d["monthly_amount"] == "900.00" and d["reason"].startswith("入户核查")
        # the answer is built from what was stored: the same as reading it back
        assert d == (await c.get(f"/v1/decisions/{d['decision_id']}", headers=CLERK)).json()
        assert d["decided_by"]["role"] == "township_clerk" and d["decided_at"]
        [made] = await events(app, DecisionMade.TYPE)
        assert made.overridden is True and made.monthly_amount == D("900.00")
        assert any(x.startswith("OVERRIDE by township_clerk: 入户核查") for x in made.reasons)
        # On PostgreSQL the decision's entry commits pending and the sealer links it just after
        # (shared/audit.py); reading the chain directly, the test seals first as GET /v1/audit does.
        await seal_all(app.state.runtime.session_factory)
        async with app.state.runtime.session_factory() as s:
            entry = (await s.execute(sa.select(audit_log).where(audit_log.c.entity_id == case_id,
                                                                audit_log.c.action == "case.decision.override"))
                     ).mappings().one()
        assert entry["actor"] == "township_clerk-test" and entry["actor_role"] == "township_clerk"
        assert "入户核查" in entry["detail"]
        # the replay shows the engine's proposal (860.00) next to the officer's final figure
        replay = (await c.get(f"/v1/decisions/{d['decision_id']}/replay", headers=CLERK)).json()
        assert replay["equal"] is True and replay["final"]["monthly_amount"] == "900.00"
        assert replay["replayed"]["assessment"]["monthly_amount"] == "860.00"
        assert (await c.post(url, json={"action": "confirm"}, headers=CLERK)).status_code == 409


async def test_linshi_above_the_township_limit_is_a_county_decision_with_stages(tmp_path: Path) -> None:
    """L3/L4: 800 × 1 × 2 months = 1,600 > 1,500 → county level; township roles are refused;
    一次审批、分阶段救助 and 先行救助 travel with the decision. 临时救助 asks no partner."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    async with running(app) as c:
        await _standards(c)
        case_id = await deliver(app, submitted([ELDER], program="linshi", hardship={"kind": "emergency", "months": 2}))
        case = await wait_status(c, case_id, "proposed", headers=CLERK)
        assert case["pending_sources"] == [] and case["proposal"]["approval_level"] == "county"
        url = f"/v1/cases/{case_id}/decision"
        assert (await c.post(url, json={"action": "confirm"}, headers=CLERK)).status_code == 403
        r = await c.post(url, json={"action": "confirm", "staged_payments": ["800.00", "700.00"]}, headers=COUNTY_OFFICER)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "staged_payments"
        r = await c.post(url, json={"action": "confirm", "staged_payments": ["800.00", "800.00"], "pay_first": True},
                         headers=COUNTY_OFFICER)
        assert r.status_code == 201, r.text
        assert r.json() == (await c.get(f"/v1/decisions/{r.json()['decision_id']}", headers=COUNTY_OFFICER)).json()
        [made] = await events(app, DecisionMade.TYPE)
        assert made.program == "linshi" and made.one_time_amount == D("1600.00") and made.monthly_amount is None
        assert made.approval_level == "county" and made.staged_payments == [D("800.00"), D("800.00")]
        assert made.pay_first is True


async def test_denied_linshi_can_be_transferred_and_dibao_denial_stays_denied(tmp_path: Path) -> None:
    """I2/L5: a denied 临时救助 case needing other help is transferred (转办) to the named
    department; a denied 低保 case is published as denied, with M5 when in the marginal band."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db", Partners(), partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        await _standards(c)
        linshi = await deliver(app, submitted([ELDER], program="linshi",
                                              hardship={"kind": "expense", "months": 1, "expense_amount": "0.00"}))
        case = await wait_status(c, linshi, "proposed", headers=CLERK)
        assert case["proposal"]["assessment"]["outcome"] == "denied"
        r = await c.post(f"/v1/cases/{linshi}/decision", headers=CLERK,
                         json={"action": "confirm", "transfer_department": "medical", "reason": "医疗救助更合适"})
        assert r.status_code == 201 and r.json()["outcome"] == "transferred"

        earner = member(date(1986, 5, 5), 3, "1000.00")      # 800 ≤ 1000 < 1200: denied, marginal (M5)
        dibao = await deliver(app, submitted([earner]))
        await wait_status(c, dibao, "proposed", headers=CLERK)
        assert (await c.post(f"/v1/cases/{dibao}/decision", headers=CLERK,
                             json={"action": "override", "outcome": "transferred", "reason": "x"})).status_code == 422
        r = await c.post(f"/v1/cases/{dibao}/decision", json={"action": "confirm"}, headers=CLERK)
        assert r.status_code == 201
        transferred, denied = await events(app, DecisionMade.TYPE)
        assert transferred.outcome == "transferred" and transferred.transfer_department == "medical"
        assert denied.outcome == "denied" and denied.transfer_department is None
        assert any(x.startswith("M5") for x in denied.reasons)


async def test_a_redelivered_application_gives_one_case_and_one_decision(database_url: str) -> None:
    """At-least-once delivery, exactly-once effect: the same event twice, and the same
    application under a new event id, open one case; it is decided once."""
    app = app_for(database_url, Partners(), partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        await _standards(c)
        data = submitted([ELDER])
        first = await deliver(app, data, event_id="33333333-3333-3333-3333-333333333333")
        assert await deliver(app, data, event_id="33333333-3333-3333-3333-333333333333") == first
        assert await deliver(app, data) == first
        assert await count(app, cases) == 1
        await wait_status(c, first, "proposed", headers=CLERK)
        assert (await c.post(f"/v1/cases/{first}/decision", json={"action": "confirm"}, headers=CLERK)).status_code == 201
        assert (await c.post(f"/v1/cases/{first}/decision", json={"action": "confirm"}, headers=CLERK)).status_code == 409
        assert len(await events(app, DecisionMade.TYPE)) == 1 and await count(app, decisions) == 1


async def test_a_case_waits_for_the_countys_standard_then_the_publication_proposes_it(tmp_path: Path) -> None:
    """POLICY.md §1: standards are never defaulted. A case whose region has none in force waits
    visibly (awaiting_policy); the county's publication re-evaluates waiting proposals."""
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db", Partners(), partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        case_id = await deliver(app, submitted([ELDER]))
        case = await wait_status(c, case_id, "awaiting_policy", headers=CLERK)
        assert case["proposal"]["assessment"] is None and "dibao_standard_urban" in case["proposal"]["notes"][-1]
        assert (await c.post(f"/v1/cases/{case_id}/decision", json={"action": "confirm"}, headers=CLERK)).status_code == 409
        await _standards(c)
        case = await wait_status(c, case_id, "proposed", headers=CLERK)
        assert case["proposal"]["assessment"]["monthly_amount"] == "860.00"


async def test_partners_configured_after_a_restart_are_asked_for_waiting_cases(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/e.db"
    first = app_for(url)
    async with running(first) as c:
        await _standards(c)
        case_id = await deliver(first, submitted([ELDER]))
        await wait_status(c, case_id, "awaiting_verification", headers=CLERK)
    partners = Partners()
    async with running(app_for(url, partners, partner_verification_urls=ALL_URLS)) as c:
        case = await wait_status(c, case_id, "proposed", headers=CLERK)
        assert len(partners.calls) == 6 and {f["origin"] for f in case["facts"]} == {"partner"}


async def test_a_partner_system_pushes_its_answer_later(tmp_path: Path) -> None:
    """A partner that answers 202 (accepted, answer later) pushes its fact with its own token;
    it gets an acknowledgement, not the case file."""
    partners = Partners(answers={"real_estate": 202})
    app = app_for(f"sqlite+aiosqlite:///{tmp_path}/e.db", partners, partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        await _standards(c)
        case_id = await deliver(app, submitted([ELDER]))
        case = await wait_status(c, case_id, "awaiting_verification", headers=CLERK)
        assert case["pending_sources"] == ["real_estate"] and case["verification"]["real_estate"]["state"] == "pending"
        r = await c.post(f"/v1/cases/{case_id}/facts", headers=auth("partner_system", COUNTY, sub="partner-land"),
                         json={"source": "real_estate", "assets_within_limits": True, "summary": "无不动产登记"})
        assert r.status_code == 201 and r.json() == {"case_id": case_id, "source": "real_estate", "recorded": True,
                                                      "status": "proposed"}
        case = (await c.get(f"/v1/cases/{case_id}", headers=CLERK)).json()
        assert [f["origin"] for f in case["facts"] if f["source"] == "real_estate"] == ["partner"]


async def test_a_decision_is_three_statements_on_postgresql(database_url: str) -> None:
    """The officers' decision is on every case's path: on PostgreSQL it locks the case, reads the
    numbers for its event from the vault and writes everything else (decision, case, benefit,
    event, audit entry) in one statement (shared/writes.py); SQLite sends them one by one. On
    PostgreSQL the decision runs in a group commit's task (decisions.py), alone here."""
    app = app_for(database_url, Partners(), partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        await _standards(c)
        case_id = await deliver(app, submitted([ELDER]))
        await wait_status(c, case_id, "proposed", headers=CLERK)
        statements: list[str] = []
        engine = app.state.runtime.engine.sync_engine
        me = asyncio.current_task()  # the request runs in this task (ASGI transport), its group
        # commit in "decision-group"; the relay, the sealer and the verification scheduler in their own

        def listener(conn, cur, stmt, *a) -> None:
            task = asyncio.current_task()
            if task is me or (task is not None and task.get_name() == "decision-group"):
                statements.append(stmt)
        sa.event.listen(engine, "before_cursor_execute", listener)
        r = await c.post(f"/v1/cases/{case_id}/decision", json={"action": "confirm"}, headers=CLERK)
        sa.event.remove(engine, "before_cursor_execute", listener)
        assert r.status_code == 201, r.text
        writes = [s for s in statements if not s.lstrip().upper().startswith("SELECT")]
        if database_url.startswith("postgresql"):
            assert len(statements) == 3, statements
            assert "FOR UPDATE" in statements[0] and "person_vault" in statements[1]
            [combined] = writes
            for table in ("decisions", "benefits", "benefit_households", "cases", "outbox", "audit_pending"):
                assert f" {table} " in combined, table
        else:
            assert len(writes) >= 6
        # what the one statement stored is what the API and the event say
        assert r.json() == (await c.get(f"/v1/decisions/{r.json()['decision_id']}", headers=CLERK)).json()
        [made] = await events(app, DecisionMade.TYPE)
        assert made.case_id == case_id and made.outcome == r.json()["outcome"]
        assert made.applicant_person_id == ELDER["person_id"]  # the number, from the vault
        assert made.covered_person_ids == [ELDER["person_id"]]
        assert await count(app, decisions) == 1
