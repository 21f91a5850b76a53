"""The timeline's batch handlers (CaseOpened, DecisionMade) store exactly what the per-event
handlers store: the same events go through the consumer's batch path into one fresh database
and one event at a time into another, and every row they touch must come out the same."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from services.intake.domain.validation import applicant_person_id
from services.intake.models import application_steps, applications, channel_feedback, transfers
from services.intake.schemas import ApplicationCreate
from shared.auth import Principal
from shared.events.base import EventData
from shared.events.eligibility import CaseOpened, DecisionMade
from shared.messaging.bus import IncomingMessage
from shared.messaging.envelope import Envelope
from shared.messaging.tables import inbox, outbox
from tests.intake.conftest import case_opened, decision, intake
from tests.support import COUNTY, application_body, feed

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)  # the service's clock in both runs
CLERK = Principal(sub="township_clerk-test", role="township_clerk", region=COUNTY, name="测试")


def message(event: EventData, subject: str, event_id: str | None = None) -> IncomingMessage:
    env = Envelope(type=event.TYPE, version=event.VERSION, source="eligibility", subject=subject,
                   correlation_id=f"corr-{subject}", data=event.model_dump(mode="json"),
                   **({"id": event_id} if event_id else {}))
    return IncomingMessage(topic=env.topic, key=subject, value=env.to_bytes(), headers={})


def applications_to_seed(service: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stored rows of five applications (built once: both databases get the same ciphertexts)."""
    bodies = [application_body(seq=1), application_body(seq=2, channel="hotline_12345"),
              application_body(seq=3, channel="hotline_12345", program="linshi"),
              application_body(seq=4, channel="active_discovery"),
              application_body(seq=5, documents=[])]  # documents missing: still "received"
    rows, steps = [], []
    for i, raw in enumerate(bodies):
        body = ApplicationCreate.model_validate(raw)
        place = body.hardship.place_region_code if body.hardship else None
        row, first = service._new_application(body, CLERK, NOW - timedelta(days=3, minutes=i), None, None,
                                               applicant_person_id(body), place)
        rows.append({k: v for k, v in row.items() if k in applications.c})
        steps += first
    return rows, steps


def batches(apps: list[dict[str, Any]]) -> list[list[IncomingMessage]]:
    """Fetched batches as the bus hands them over (one topic partition each), covering: several
    applications interleaved, an event id delivered twice, a case and a decision re-sent under a
    new event id, two cases and several decisions for one application (the later one wins), every
    kind of outcome, 12345 feedback, and events for an application intake does not know."""
    out = [{"application_id": a["id"], "channel": a["channel"], "program": a["program"],
            "region_code": a["region_code"], "handling_region_code": a["handling_region_code"]} for a in apps]
    a0, a1, a2, a3, a4 = out
    unknown = dict(a0, application_id="00000000-0000-4000-8000-000000000000")

    def opened(o: dict[str, Any], case: str, minutes: int) -> CaseOpened:
        return case_opened(o, case).model_copy(update={"opened_at": NOW - timedelta(days=2, minutes=-minutes)})

    def decided(o: dict[str, Any], case: str, minutes: int, *args: Any, **kw: Any) -> DecisionMade:
        return decision(o, *args, case_id=case, **kw).model_copy(
            update={"decided_at": NOW - timedelta(days=1, minutes=-minutes)})

    o0, o3a, o3b = opened(a0, "case-0", 1), opened(a3, "case-3a", 6), opened(a3, "case-3b", 7)
    d0 = decided(a0, "case-0", 1)
    d2 = decided(a2, "case-2", 3, monthly=None, one_time="1200.00")
    cases = [message(o0, a0["application_id"], "10000000-0000-4000-8000-000000000000"),
             message(opened(a1, "case-1", 2), a1["application_id"], "10000000-0000-4000-8000-000000000001"),
             message(o0, a0["application_id"]),  # the same case, a new event id
             message(opened(a2, "case-2", 3), a2["application_id"]),
             message(o0, a0["application_id"], "10000000-0000-4000-8000-000000000000"),  # the same event again
             message(opened(unknown, "case-x", 4), unknown["application_id"]),
             message(opened(a4, "case-4", 5), a4["application_id"]),
             message(o3a, a3["application_id"]), message(o3b, a3["application_id"])]
    decisions = [message(d0, a0["application_id"]),
                 message(decided(a1, "case-1", 2, "denied", monthly=None), a1["application_id"]),
                 message(d0, a0["application_id"]),  # the same decision, a new event id
                 message(d2, a2["application_id"], "20000000-0000-4000-8000-000000000002"),
                 message(decided(a3, "case-3b", 4, "transferred", monthly=None, department="medical"),
                         a3["application_id"]),
                 message(decided(a0, "case-0", 5, "denied", monthly=None), a0["application_id"]),  # a later one
                 message(decided(a1, "case-1", 6, "approved"), a1["application_id"]),  # after it closed
                 message(decided(unknown, "case-x", 7), unknown["application_id"])]
    later_cases = [message(opened(a0, "case-0b", 20), a0["application_id"]),  # on a closed application
                   message(opened(a4, "case-4", 21), a4["application_id"])]
    later_decisions = [message(d2, a2["application_id"], "20000000-0000-4000-8000-000000000002"),  # seen
                       message(decided(a4, "case-4", 30, "approved", staged=["300.00", "300.00"]),
                               a4["application_id"]),
                       message(decided(a2, "case-2", 31, "single_person"), a2["application_id"])]
    return [cases, decisions, later_cases, later_decisions]


async def stored(app: Any) -> dict[str, Any]:
    """Every row the handlers write, minus what is random by design (transfer ids, envelope ids
    and times) and the inbox's processing time."""
    async with app.state.runtime.session_factory() as s:
        async def rows(q: Any) -> list[dict[str, Any]]:
            return [dict(r) for r in (await s.execute(q)).mappings()]
        payloads = []
        for r in await rows(sa.select(outbox.c.topic, outbox.c.key, outbox.c.type, outbox.c.payload)
                            .order_by(outbox.c.seq)):
            env = orjson.loads(r.pop("payload"))
            del env["id"], env["time"]
            payloads.append(r | {"envelope": env})
        return {
            "applications": await rows(sa.select(applications).order_by(applications.c.id)),
            "steps": await rows(sa.select(application_steps).order_by(application_steps.c.id)),
            "transfers": await rows(sa.select(*(c for c in transfers.c if c.name != "id"))
                                    .order_by(transfers.c.application_id, transfers.c.created_at)),
            "feedback": await rows(sa.select(channel_feedback).order_by(channel_feedback.c.id)),
            "outbox": payloads,
            "inbox": await rows(sa.select(inbox.c.consumer, inbox.c.event_id, inbox.c.type)
                                .order_by(inbox.c.event_id)),
        }


Seed = tuple[list[dict[str, Any]], list[dict[str, Any]], list[list[IncomingMessage]]]


async def run(url: str, seed: Seed | None, *, batched: bool) -> tuple[dict[str, Any], Any, Seed]:
    """The applications and the events are made on the first run and replayed on the second."""
    async with intake(url) as (app, _):
        if seed is None:
            rows, steps = applications_to_seed(app.state.intake)
            seed = rows, steps, batches(rows)
        rows, steps, fetched = seed
        async with app.state.runtime.uow() as tx:
            await tx.session.execute(applications.insert(), rows)
            await tx.session.execute(application_steps.insert(), steps)
        consumer = app.state.runtime.consumers[0]
        assert set(consumer.batch_handlers) == {CaseOpened.TYPE, DecisionMade.TYPE}
        await feed(consumer, fetched, batched=batched)
        return await stored(app), consumer.stats, seed


async def test_batch_handlers_store_what_the_per_event_handlers_store(
        two_databases: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.intake.service._now", lambda: NOW)
    batch_url, single_url = two_databases
    by_batch, batch_stats, seed = await run(batch_url, None, batched=True)
    one_by_one, single_stats, _ = await run(single_url, seed, batched=False)

    assert by_batch == one_by_one
    assert (batch_stats.handled, batch_stats.duplicates, batch_stats.dead_lettered) == \
        (single_stats.handled, single_stats.duplicates, single_stats.dead_lettered) == (20, 2, 0)
    # what the events did (so the comparison above is not between two empty results)
    status = {r["id"]: (r["status"], r["case_id"], r["decision_outcome"]) for r in by_batch["applications"]}
    a0, a1, a2, a3, a4 = (r["id"] for r in seed[0])
    assert status[a0] == ("closed", "case-0b", "denied")         # approved, then a later denial: 转办, closed
    assert status[a1] == ("closed", "case-1", "approved")        # denied and closed; a later decision is only noted
    assert status[a2] == ("decided", "case-2", "single_person")
    assert status[a3] == ("closed", "case-3b", "transferred")    # the later of two cases
    assert status[a4] == ("decided", "case-4", "approved")
    assert [s["step"] for s in by_batch["steps"] if s["application_id"] == a0][3:] == [
        "under_review", "under_review", "decided", "feedback", "decided", "transferred", "feedback", "closed",
        "under_review"]
    assert len(by_batch["transfers"]) == 3
    assert [f["application_id"] for f in by_batch["feedback"]] == [a1, a2, a2]
    assert [e["type"] for e in by_batch["outbox"]] == ["intake.application.transferred"] * 3
    assert {e["envelope"]["correlation_id"] for e in by_batch["outbox"]} == {f"corr-{a}" for a in (a0, a1, a3)}
