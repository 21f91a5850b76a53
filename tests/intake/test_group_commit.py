"""Group commit on PostgreSQL (fastpath.py): concurrent submissions share statements, the unique
indexes still judge duplicates inside one group, and one bad row fails only its own request."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.intake.fastpath import DuplicateApplication
from services.intake.models import application_steps, applications
from shared.events.intake import ApplicationSubmitted
from tests.intake.conftest import count, events, intake
from tests.support import application_body, auth


UNLIMITED = {"public_rate_limit_per_s": 1e6, "public_rate_limit_burst": 1e6}  # one client bursting on purpose


def _h(key: str | None = None) -> dict[str, str]:
    return {**auth("township_clerk"), **({"Idempotency-Key": key} if key else {})}


async def test_concurrent_submissions_share_statements_and_duplicates_in_a_group_are_caught(pg_url: str) -> None:
    async with intake(pg_url, application_fast_path_writers=1, **UNLIMITED) as (app, client):
        writer = app.state.intake.writer
        before = writer.groups_written
        distinct = [client.post("/v1/applications", json=application_body(seq=100 + i), headers=_h(f"g-{i}"))
                    for i in range(60)]
        # the same key three times and the same person (no key) three times, in the same burst
        same_key = [client.post("/v1/applications", json=application_body(seq=200), headers=_h("g-same"))
                    for _ in range(3)]
        same_person = [client.post("/v1/applications", json=application_body(seq=201), headers=_h())
                       for _ in range(3)]
        answers = await asyncio.gather(*distinct, *same_key, *same_person)
        statements = writer.groups_written - before
        assert [r.status_code for r in answers[:60]] == [201] * 60
        keyed = answers[60:63]
        assert {r.status_code for r in keyed} == {201} and len({r.json()["application_id"] for r in keyed}) == 1
        person = answers[63:]
        assert sorted(r.status_code for r in person) == [200, 200, 201]
        assert len({r.json()["application_id"] for r in person}) == 1
        assert await count(app, applications) == 62
        assert await count(app, application_steps) == 62 * 3
        assert len(await events(app, ApplicationSubmitted.TYPE)) == 62
        # one writer in flight at a time: the burst went in far fewer statements than requests
        assert statements < 66 / 3, statements


async def test_a_bad_row_fails_only_its_own_request(pg_url: str) -> None:
    async with intake(pg_url, application_fast_path_writers=1) as (app, client):
        service = app.state.intake
        writer = service.writer
        from services.intake.schemas import ApplicationCreate
        from shared.auth import Principal

        principal = Principal(sub="clerk", role="township_clerk", region="522701000000", name="c")
        rows = []
        for i in range(5):
            body = ApplicationCreate.model_validate(application_body(seq=300 + i))
            from services.intake.domain.validation import applicant_person_id
            now = service.clock()
            row, steps = service._new_application(body, principal, now, None, None,
                                                  applicant_person_id(body), None)
            rows.append((row, steps))
        rows[2][0]["channel"] = "x" * 40  # longer than the column: PostgreSQL refuses this row only
        outcomes: list[Any] = await asyncio.gather(
            *(writer.insert(row, steps, service._submitted_row(row)) for row, steps in rows), return_exceptions=True)
        assert [o is None for o in outcomes] == [True, True, False, True, True]
        assert not isinstance(outcomes[2], DuplicateApplication)
        assert await count(app, applications) == 4
        assert len(await events(app, ApplicationSubmitted.TYPE)) == 4
        # the same rows again: every one is a duplicate now (the unique keys), nothing stored twice
        again = await asyncio.gather(*(writer.insert(r, s, service._submitted_row(r)) for r, s in rows[:2]),
                                     return_exceptions=True)
        assert all(isinstance(o, DuplicateApplication) for o in again)
        assert await count(app, applications) == 4


@pytest.mark.parametrize("writers", [1, 4])
async def test_a_lone_request_is_written_at_once(pg_url: str, writers: int) -> None:
    async with intake(pg_url, application_fast_path_writers=writers) as (app, client):
        writer = app.state.intake.writer
        before = writer.groups_written
        r = await client.post("/v1/applications", json=application_body(seq=400), headers=_h())
        assert r.status_code == 201 and writer.groups_written == before + 1
