"""批量审核 (``POST /v1/decision-batches``): an officer decides several cases of the work list in
one request; each case is decided and answered exactly as by its own
``POST /v1/cases/{id}/decision`` (D6 levels, regions, the body's checks), in the batch's order,
and a refused one writes nothing. SQLite decides them one by one, PostgreSQL in the decision
group commit: both give the same answers."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from services.eligibility.models import cases, decisions
from shared.audit import audit_log, seal_all
from shared.events.eligibility import DecisionMade
from shared.messaging.envelope import Envelope
from shared.messaging.tables import outbox
from tests.eligibility.helpers import (
    ALL_URLS, COUNTY, OTHER_TOWNSHIP, Partners, app_for, count, deliver, member, publish, submitted, wait_status,
)
from tests.eligibility.test_cases_flow import CLERK, COUNTY_OFFICER, STANDARDS
from tests.support import auth, bounded, running

MISSING = "00000000-0000-4000-8000-000000000000"


async def test_a_batch_answers_each_case_as_its_own_decision(database_url: str) -> None:
    await bounded(_batch(database_url))


async def proposed_cases(app, c, n: int, born: date) -> list[str]:  # type: ignore[no-untyped-def]
    """``n`` one-person cases with a proposal, after the county's standards are published."""
    await publish(c, COUNTY, "2026-01-01", STANDARDS, COUNTY_OFFICER)
    ids = [await deliver(app, submitted([member(born.replace(day=1 + i), i, "100.00", labor_capacity="none")]))
           for i in range(n)]
    for case_id in ids:
        await wait_status(c, case_id, "proposed", headers=CLERK)
    return ids


async def _batch(database_url: str) -> None:
    app = app_for(database_url, Partners(), partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        ids = await proposed_cases(app, c, 4, date(1950, 3, 1))

        # another township's clerk: every case is hidden (404), nothing is decided
        r = await c.post("/v1/decision-batches", headers=auth("township_clerk", OTHER_TOWNSHIP),
                         json={"decisions": [{"case_id": ids[3], "action": "confirm"}]})
        assert r.status_code == 200, r.text
        assert [x["status"] for x in r.json()["results"]] == [404]
        assert await count(app, decisions) == 0

        batch = [{"case_id": ids[0], "action": "confirm", "reason": "入户核查属实"},
                 {"case_id": ids[1], "action": "confirm"},
                 {"case_id": ids[0], "action": "confirm"},  # named twice: decided once
                 {"case_id": MISSING, "action": "confirm"},
                 {"case_id": ids[2], "action": "override", "outcome": "denied"},  # no reason: refused
                 {"case_id": ids[3], "action": "override", "outcome": "denied", "reason": "有赡养人"}]
        r = await c.post("/v1/decision-batches", json={"decisions": batch}, headers=CLERK)
        assert r.status_code == 200, r.text
        out = r.json()
        assert [x["case_id"] for x in out["results"]] == [b["case_id"] for b in batch]
        assert [x["status"] for x in out["results"]] == [201, 201, 409, 404, 422, 201]
        assert (out["decided"], out["refused"]) == (3, 3)
        for x in out["results"]:
            if x["status"] == 201:  # the summary is what was stored
                stored = (await c.get(f"/v1/decisions/{x['decision']['decision_id']}", headers=CLERK)).json()
                assert stored["case_id"] == x["case_id"]
                assert x["decision"] == {k: stored[k] for k in x["decision"]}
                assert set(x["decision"]) == {"decision_id", "action", "outcome", "monthly_amount",
                                              "one_time_amount", "approval_level", "overridden",
                                              "transfer_department", "pay_first", "decided_at"}
            else:
                assert "decision" not in x and x["problem"]["status"] == x["status"]
                assert {"type", "title", "detail"} <= set(x["problem"])
        first = (await c.get(f"/v1/decisions/{out['results'][0]['decision']['decision_id']}", headers=CLERK)).json()
        assert first["reason"] == "入户核查属实" and first["monthly_amount"] == out["results"][0]["decision"]["monthly_amount"]
        assert out["results"][5]["decision"]["outcome"] == "denied"
        assert out["results"][5]["decision"]["overridden"] is True
        assert [e["field"] for e in out["results"][4]["problem"]["errors"]] == ["reason"]

        assert await count(app, decisions) == 3
        async with app.state.runtime.session_factory() as s:
            status = dict((await s.execute(sa.select(cases.c.id, cases.c.status))).all())
            events = [Envelope.from_bytes(p) for p in (await s.execute(
                sa.select(outbox.c.payload).where(outbox.c.type == DecisionMade.TYPE))).scalars()]
        assert status == {ids[0]: "decided", ids[1]: "decided", ids[2]: "proposed", ids[3]: "decided"}
        assert sorted(e.data["case_id"] for e in events) == sorted([ids[0], ids[1], ids[3]])

        await seal_all(app.state.runtime.session_factory)
        async with app.state.runtime.session_factory() as s:
            audited = sorted((await s.execute(sa.select(audit_log.c.action, audit_log.c.entity_id).where(
                audit_log.c.action.like("case.decision.%")))).all())
        assert audited == sorted([("case.decision.confirm", ids[0]), ("case.decision.confirm", ids[1]),
                                  ("case.decision.override", ids[3])])

        # the case refused above is still open to a decision of its own
        r = await c.post(f"/v1/cases/{ids[2]}/decision", json={"action": "confirm"}, headers=CLERK)
        assert r.status_code == 201, r.text


async def test_a_malformed_batch_is_refused_whole_and_changes_nothing(database_url: str) -> None:
    app = app_for(database_url, Partners(), partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        await publish(c, COUNTY, "2026-01-01", STANDARDS, COUNTY_OFFICER)
        case_id = await deliver(app, submitted([member(date(1950, 3, 1), 1, "100.00", labor_capacity="none")]))
        await wait_status(c, case_id, "proposed", headers=CLERK)
        for body, field in (({"decisions": []}, "decisions"),
                            ({"decisions": [{"case_id": "not-a-uuid", "action": "confirm"}]}, "decisions.0.case_id"),
                            ({"decisions": [{"case_id": case_id, "action": "confirm"},
                                            {"case_id": case_id, "action": "approve"}]}, "decisions.1.action"),
                            ({"decisions": [{"case_id": case_id, "action": "confirm"}] * 101}, "decisions")):
            r = await c.post("/v1/decision-batches", json=body, headers=CLERK)
            assert r.status_code == 422, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert field in [e["field"] for e in r.json()["errors"]], r.json()
        r = await c.post("/v1/decision-batches", json={"decisions": [{"case_id": case_id, "action": "confirm"}]},
                         headers=auth("township_office_leader"))
        assert r.status_code == 403
        assert await count(app, decisions) == 0
        await wait_status(c, case_id, "proposed", headers=CLERK)


async def test_a_case_that_fails_alone_is_answered_503_and_the_others_are_decided(database_url: str) -> None:
    """A failure that is not a refusal (here: the case's check crashes) costs that case alone:
    it is answered 503 with nothing written, the others keep their 201 and their decisions, and
    sent again once the failure is gone it is decided."""
    app = app_for(database_url, Partners(), partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        ids = await proposed_cases(app, c, 3, date(1951, 4, 1))
        service = app.state.decisions
        real_plan = service._plan

        async def crashing_plan(session, request, row, now, decided_on):  # type: ignore[no-untyped-def]
            if request.case_id == ids[1]:
                raise RuntimeError("the database went away for this one")
            return await real_plan(session, request, row, now, decided_on)

        service._plan = crashing_plan
        try:
            r = await c.post("/v1/decision-batches", headers=CLERK,
                             json={"decisions": [{"case_id": i, "action": "confirm"} for i in ids]})
        finally:
            del service._plan
        assert r.status_code == 200, r.text
        out = r.json()
        assert [x["status"] for x in out["results"]] == [201, 503, 201]
        assert (out["decided"], out["refused"]) == (2, 1)
        problem = out["results"][1]["problem"]
        assert problem["status"] == 503 and ids[1] in problem["detail"] and "Traceback" not in problem["detail"]
        assert await count(app, decisions) == 2
        await wait_status(c, ids[1], "proposed", headers=CLERK)

        r = await c.post("/v1/decision-batches", headers=CLERK, json={"decisions": [{"case_id": ids[1], "action": "confirm"}]})
        assert [x["status"] for x in r.json()["results"]] == [201]
        assert await count(app, decisions) == 3
