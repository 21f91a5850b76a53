"""Officers' decisions that arrive together share one transaction on PostgreSQL (group commit,
services/eligibility/decisions.py): each is answered exactly as it would be alone — its own
decision, event (with its own correlation id) and audit entry; a refused one (404, 409) writes
nothing and does not fail its neighbours; a group whose writes fail is run one by one."""
from __future__ import annotations

import asyncio
from datetime import date

import pytest
import sqlalchemy as sa

from services.eligibility.models import benefits, decisions
from shared import writes as shared_writes
from shared.audit import audit_log, seal_all
from shared.events.eligibility import DecisionMade
from shared.messaging.envelope import Envelope
from shared.messaging.tables import outbox
from tests.eligibility.helpers import (
    ALL_URLS, COUNTY, Partners, app_for, count, deliver, member, publish, submitted, wait_status,
)
from tests.eligibility.test_cases_flow import CLERK, COUNTY_OFFICER, STANDARDS
from tests.support import bounded, running


@pytest.fixture
def pg_url(pg_databases) -> str:
    return pg_databases.new("group")


async def _proposed_cases(app, c, n: int) -> list[str]:
    await publish(c, COUNTY, "2026-01-01", STANDARDS, COUNTY_OFFICER)
    ids = [await deliver(app, submitted([member(date(1950, 3, 1 + i), i, "100.00", labor_capacity="none")]))
           for i in range(n)]
    for case_id in ids:
        await wait_status(c, case_id, "proposed", headers=CLERK)
    return ids


async def _stored_events(app) -> list[Envelope]:
    async with app.state.runtime.session_factory() as s:
        rows = (await s.execute(sa.select(outbox.c.payload).where(outbox.c.type == DecisionMade.TYPE)
                                .order_by(outbox.c.seq))).scalars().all()
    return [Envelope.from_bytes(r) for r in rows]


async def test_decisions_arriving_together_are_each_answered_as_alone(pg_url: str) -> None:
    await bounded(_together(pg_url))


async def _together(pg_url: str) -> None:
    app = app_for(pg_url, Partners(), partner_verification_urls=ALL_URLS)
    async with running(app) as c:
        ids = await _proposed_cases(app, c, 12)
        group = app.state.decisions.group
        assert group is not None  # PostgreSQL: on by default

        async def post(case_id: str, n: int):
            return await c.post(f"/v1/cases/{case_id}/decision", json={"action": "confirm"},
                                headers={**CLERK, "X-Correlation-ID": f"corr-{n}"})

        # every case once, the first case twice more, and a case that does not exist
        targets = [*ids, ids[0], "00000000-0000-0000-0000-000000000000", ids[0]]
        answers = await asyncio.gather(*(post(t, n) for n, t in enumerate(targets)))
        statuses = [r.status_code for r in answers]
        assert statuses[len(ids)] in (201, 409) and statuses[0] in (201, 409)
        first = [statuses[i] for i, t in enumerate(targets) if t == ids[0]]
        assert sorted(first) == [201, 409, 409], first  # one decision per case, whichever came first
        assert statuses[1:len(ids)] == [201] * (len(ids) - 1)
        assert statuses[len(ids) + 1] == 404
        for r in answers:
            if r.status_code >= 400:
                assert r.headers["content-type"].startswith("application/problem+json"), r.text
        assert group.groups < group.items == len(targets)  # some of them did share a transaction

        made = [r.json() for r in answers if r.status_code == 201]
        assert sorted(d["case_id"] for d in made) == sorted(ids)
        for d in made:  # the answer is what was stored
            assert d == (await c.get(f"/v1/decisions/{d['decision_id']}", headers=CLERK)).json()
        assert await count(app, decisions) == len(ids) and await count(app, benefits) == len(ids)

        envs = await _stored_events(app)
        assert sorted(e.data["case_id"] for e in envs) == sorted(ids)
        by_decision = {e.data["decision_id"]: e for e in envs}
        for n, r in enumerate(answers):
            if r.status_code == 201:
                env = by_decision[r.json()["decision_id"]]
                assert env.correlation_id == f"corr-{n}"  # each request's own, not its group's
                assert env.data["outcome"] == r.json()["outcome"]

        await seal_all(app.state.runtime.session_factory)
        async with app.state.runtime.session_factory() as s:
            audited = (await s.execute(sa.select(audit_log.c.entity_id).where(
                audit_log.c.action == "case.decision.confirm"))).scalars().all()
        assert sorted(audited) == sorted(ids)
        report = (await c.get("/v1/audit/verify", headers=COUNTY_OFFICER)).json()
        assert report["ok"] is True, report


async def test_a_group_whose_writes_fail_is_decided_one_by_one(pg_url: str, monkeypatch) -> None:
    await bounded(_failing_group(pg_url, monkeypatch))


async def _failing_group(pg_url: str, monkeypatch) -> None:
    app = app_for(pg_url, Partners(), partner_verification_urls=ALL_URLS)
    real = shared_writes.RowSets.execute
    failed: list[int] = []

    async def fail_once(self, session):
        if self and not failed:
            failed.append(1)
            raise RuntimeError("the group's statement failed")
        await real(self, session)

    async with running(app) as c:
        ids = await _proposed_cases(app, c, 6)
        monkeypatch.setattr(shared_writes.RowSets, "execute", fail_once)
        answers = await asyncio.gather(*(c.post(f"/v1/cases/{i}/decision", json={"action": "confirm"},
                                                headers=CLERK) for i in ids))
        assert [r.status_code for r in answers] == [201] * len(ids), [r.text for r in answers]
        assert failed == [1]
        assert await count(app, decisions) == len(ids)
        assert sorted(e.data["case_id"] for e in await _stored_events(app)) == sorted(ids)
