"""Idempotency-Key and one open application per person and program — also under races on
PostgreSQL (two identical requests at once: one application, one event)."""
from __future__ import annotations

import asyncio

from services.intake.models import application_steps, applications
from shared.events.intake import ApplicationSubmitted
from tests.intake.conftest import count, events, intake
from tests.support import application_body, auth


def _h(key: str | None = None, role: str = "township_clerk") -> dict[str, str]:
    return {**auth(role), **({"Idempotency-Key": key} if key else {})}


async def test_same_key_same_answer_other_body_409_open_case_200(database_url: str) -> None:
    async with intake(database_url) as (app, client):
        first = await client.post("/v1/applications", json=application_body(seq=1), headers=_h("k-1"))
        assert first.status_code == 201
        body = first.json()
        assert {"application_id", "status", "missing_documents", "due_by"} <= set(body)
        again = await client.post("/v1/applications", json=application_body(seq=1), headers=_h("k-1"))
        assert again.status_code == 201 and again.json()["application_id"] == body["application_id"]
        other = await client.post("/v1/applications", json=application_body(seq=2), headers=_h("k-1"))
        assert other.status_code == 409
        assert other.headers["content-type"].startswith("application/problem+json")
        # The same person and program while open: the existing application, 200.
        same_person = await client.post("/v1/applications", json=application_body(seq=1), headers=_h("k-2"))
        assert same_person.status_code == 200 and same_person.json()["application_id"] == body["application_id"]
        no_key = await client.post("/v1/applications", json=application_body(seq=1), headers=_h())
        assert no_key.status_code == 200
        # Another program for the same person is another application.
        linshi = await client.post("/v1/applications", json=application_body(seq=1, program="linshi"), headers=_h())
        assert linshi.status_code == 201
        # Keys are per caller: another clerk's "k-1" is a different key.
        mine = await client.post("/v1/applications", json=application_body(seq=3),
                                 headers={**auth("township_clerk", sub="clerk-2"), "Idempotency-Key": "k-1"})
        assert mine.status_code == 201
        assert await count(app, applications) == 3
        assert len(await events(app, ApplicationSubmitted.TYPE)) == 3


async def test_races_on_postgres_store_one_application_and_one_event(pg_url: str) -> None:
    """Identical requests at once (asyncio.gather on real PostgreSQL connections)."""
    async with intake(pg_url) as (app, client):
        body = application_body(seq=11)
        answers = await asyncio.gather(*(client.post("/v1/applications", json=body, headers=_h("race-1"))
                                         for _ in range(6)))
        assert {r.status_code for r in answers} == {201}
        assert len({r.json()["application_id"] for r in answers}) == 1
        assert await count(app, applications) == 1
        assert await count(app, application_steps) == 3
        assert len(await events(app, ApplicationSubmitted.TYPE)) == 1

        # No key, same person and program at once: one 201, the others 200 with the same id.
        body = application_body(seq=12)
        answers = await asyncio.gather(*(client.post("/v1/applications", json=body, headers=_h())
                                         for _ in range(4)))
        assert sorted(r.status_code for r in answers) == [200, 200, 200, 201]
        assert len({r.json()["application_id"] for r in answers}) == 1

        # Same key, different bodies at once: one wins, the other is told 409.
        a, b = await asyncio.gather(
            client.post("/v1/applications", json=application_body(seq=13), headers=_h("race-2")),
            client.post("/v1/applications", json=application_body(seq=14), headers=_h("race-2")))
        assert sorted((a.status_code, b.status_code)) == [201, 409]
        assert await count(app, applications) == 3
        assert len(await events(app, ApplicationSubmitted.TYPE)) == 3


async def test_fast_path_and_orm_path_write_the_same_rows(pg_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL writes new applications with one statement (fastpath.py); SQLite with the
    unit of work. Both must store the same application, timeline and event."""
    import orjson

    bodies = [application_body(seq=21), application_body(seq=22, documents=[])]
    stored = []
    for url in (pg_url, f"sqlite+aiosqlite:///{tmp_path}/orm.db"):
        async with intake(url) as (app, client):
            for body in bodies:
                assert (await client.post("/v1/applications", json=body, headers=_h())).status_code == 201
            async with app.state.runtime.session_factory() as s:
                import sqlalchemy as sa
                rows = (await s.execute(sa.select(applications).order_by(applications.c.applicant_person_index))).mappings().all()
                st = (await s.execute(sa.select(application_steps.c.step, application_steps.c.detail)
                                      .order_by(application_steps.c.id))).all()
            evs = await events(app)
            # the ciphertexts differ (a fresh nonce each time): compare what they decrypt to
            skip = {"id", "received_at", "updated_at", "accepted_at", "step_started_at", "applicant_person_enc",
                    "household_enc"}
            vault = app.state.intake.vault
            stored.append(([{k: v for k, v in vault.open(r).items() if k not in skip} for r in rows],
                           [tuple(x) for x in st], [(e["type"], sorted(e["data"])) for e in evs]))
            for e in evs:  # the hand-built payload is exactly the event contract
                assert ApplicationSubmitted.model_validate(e["data"]).model_dump(mode="json") == e["data"]
                assert orjson.loads(orjson.dumps(e))["source"] == "intake"
    assert stored[0] == stored[1]


async def test_open_application_the_caller_may_not_see_is_a_conflict(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The person is already registered at the window; their e救助 request neither duplicates
    the application nor reveals it (409, no details)."""
    async with intake(f"sqlite+aiosqlite:///{tmp_path}/v.db") as (app, client):
        assert (await client.post("/v1/applications", json=application_body(seq=31), headers=_h())).status_code == 201
        r = await client.post("/v1/applications", json=application_body(seq=31, channel="e_jiuzhu"),
                              headers=auth("applicant", sub="wx-31"))
        assert r.status_code == 409 and "application_id" not in r.text
        assert await count(app, applications) == 1
