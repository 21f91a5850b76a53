"""Monitoring's batch handlers (CaseOpened → I5 new cases, DecisionMade → the M1 register and M5
potential cases) store exactly what the per-event handlers store: the same events go through
the consumer's batch path into one fresh database and one event at a time into another, and
every row they touch must come out the same."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa

from services.monitoring.models import (new_cases, person_vault, potential_cases, register, register_history,
                                        reporting_units)
from shared.events.base import EventData
from shared.events.eligibility import CaseOpened, DecisionMade
from shared.messaging.bus import IncomingMessage
from shared.messaging.envelope import Envelope
from shared.messaging.tables import inbox, outbox
from tests.monitoring.helpers import OTHER_VILLAGE, VILLAGE, benefit_stopped, decision, harness, person
from tests.support import feed

M5 = ["M5: 家庭月人均收入在低保标准与边缘线之间"]


def message(event: EventData, subject: str, event_id: str | None = None) -> IncomingMessage:
    env = Envelope(type=event.TYPE, version=event.VERSION, source="eligibility", subject=subject,
                   data=event.model_dump(mode="json"), **({"id": event_id} if event_id else {}))
    return IncomingMessage(topic=env.topic, key=subject, value=env.to_bytes(), headers={})


def opened(case_id: str, channel: str, region: str = VILLAGE) -> CaseOpened:
    at = datetime(2026, 9, 2, 1, tzinfo=timezone.utc)
    return CaseOpened(case_id=case_id, application_id=f"app-{case_id}", channel=channel, program="dibao",
                      region_code=region, handling_region_code=region[:9] + "000", applicant_person_id=person(90),
                      household_size=1, received_at=at, opened_at=at)


def batches() -> list[list[IncomingMessage]]:
    """Fetched batches as the bus hands them over (one topic partition each), covering: people of
    several decisions interleaved, an event id delivered twice, a decision and a case re-sent
    under a new event id, every outcome and programme, a person who enters, moves, leaves and
    enters again within one batch and across batches, and a denial in the marginal band (M5)."""
    p1, p2, p3, p4, p5, p6, p7 = (person(i) for i in range(1, 8))
    da = decision([p1, p2])
    dd = decision([p5], outcome="denied", reasons=M5)

    def m(event: EventData, event_id: str | None = None) -> IncomingMessage:
        return message(event, getattr(event, "application_id", None) or event.case_id, event_id)

    first = [m(da, "10000000-0000-4000-8000-000000000001"),
             m(decision([p3], program="tekun")),
             m(decision([p4], program="linshi", region=OTHER_VILLAGE)),
             m(dd, "10000000-0000-4000-8000-000000000004"),
             m(da),                                              # the same decision, a new event id
             m(da, "10000000-0000-4000-8000-000000000001"),      # the same event again
             m(decision([p6], outcome="denied", reasons=M5)),
             m(decision([p5], region=OTHER_VILLAGE)),            # covered now: leaves marginal, entered just before
             m(decision([p1], region=OTHER_VILLAGE)),            # moves, entered just before
             m(decision([p7], outcome="transferred")),
             m(decision([p7], outcome="denied")),                # denied, not in the marginal band
             m(decision([p4, p7], program="dibao", outcome="gradual_exit", region=OTHER_VILLAGE))]
    c1 = opened("case-1", "window")
    cases = [m(c1, "20000000-0000-4000-8000-000000000001"),
             m(opened("case-2", "hotline_12345")),
             m(c1.model_copy(update={"channel": "e_jiuzhu"})),   # the same case, a new event id: the first stays
             m(opened("case-3", "active_discovery", OTHER_VILLAGE)),
             m(c1, "20000000-0000-4000-8000-000000000001")]
    stops = [m(benefit_stopped([p3], program="tekun")), m(benefit_stopped([p7], region=OTHER_VILLAGE))]
    second = [m(dd, "10000000-0000-4000-8000-000000000004"),     # seen in the first batch
              m(decision([p2], region=OTHER_VILLAGE)),           # moves, stored before
              m(decision([p6], outcome="denied", reasons=M5, region=OTHER_VILLAGE)),  # moves, stored before
              m(decision([p6])),                                 # leaves marginal
              m(decision([p6], outcome="denied", reasons=M5)),   # ... and enters it again
              m(decision([p3], program="tekun")),                # back after the stop
              m(dd),                                             # re-sent: one potential case still
              m(decision([p1])), m(decision([p1], region=OTHER_VILLAGE))]  # moves twice
    return [first, cases, stops, second]


async def stored(app: Any) -> dict[str, Any]:
    """Every row the handlers write (the vault's ciphertexts are random by design: keys only),
    the outbox's envelopes minus their ids and times, the inbox minus its processing times."""
    async with app.state.runtime.session_factory() as s:
        async def rows(q: Any) -> list[dict[str, Any]]:
            return [dict(r) for r in (await s.execute(q)).mappings()]
        envelopes = []
        for payload in (await s.execute(sa.select(outbox.c.payload).order_by(outbox.c.seq))).scalars():
            env = orjson.loads(payload)
            del env["id"], env["time"]
            envelopes.append(env)
        return {
            "new_cases": await rows(sa.select(new_cases).order_by(new_cases.c.case_id)),
            "register": await rows(sa.select(register).order_by(register.c.person_id, register.c.category)),
            "history": await rows(sa.select(register_history).order_by(register_history.c.id)),
            "units": await rows(sa.select(reporting_units).order_by(reporting_units.c.region_code)),
            "potential": await rows(sa.select(potential_cases).order_by(potential_cases.c.id)),
            "vault": await rows(sa.select(person_vault.c.person_key).order_by(person_vault.c.person_key)),
            "outbox": envelopes,
            "inbox": await rows(sa.select(inbox.c.consumer, inbox.c.event_id, inbox.c.type)
                                .order_by(inbox.c.event_id)),
        }


async def run(url: str, fetched: list[list[IncomingMessage]], *, batched: bool) -> tuple[dict[str, Any], Any]:
    async with harness(url) as h:
        consumer = h.app.state.runtime.consumers[0]
        assert set(consumer.batch_handlers) == {CaseOpened.TYPE, DecisionMade.TYPE}
        await feed(consumer, fetched, batched=batched)
        return await stored(h.app), consumer.stats


async def test_batch_handlers_store_what_the_per_event_handlers_store(two_databases: tuple[str, str]) -> None:
    batch_url, single_url = two_databases
    fetched = batches()
    by_batch, batch_stats = await run(batch_url, fetched, batched=True)
    one_by_one, single_stats = await run(single_url, fetched, batched=False)

    assert by_batch == one_by_one
    assert (batch_stats.handled, batch_stats.duplicates, batch_stats.dead_lettered) == \
        (single_stats.handled, single_stats.duplicates, single_stats.dead_lettered) == (25, 3, 0)
    # what the events did (so the comparison above is not between two empty results)
    assert [(c["case_id"], c["channel"]) for c in by_batch["new_cases"]] == [
        ("case-1", "window"), ("case-2", "hotline_12345"), ("case-3", "active_discovery")]
    register_rows = {(r["category"], r["region_code"]) for r in by_batch["register"]}
    assert register_rows == {("dibao", VILLAGE), ("dibao", OTHER_VILLAGE), ("tekun", VILLAGE),
                             ("sudden_hardship", OTHER_VILLAGE), ("marginal", VILLAGE)}
    assert len(by_batch["register"]) == 9
    actions = [(h["category"], h["action"]) for h in by_batch["history"]]
    assert actions.count(("marginal", "leave")) == 3 and actions.count(("tekun", "enter")) == 2
    assert [p["dedupe_key"].split(":")[0] for p in by_batch["potential"]] == ["decision"] * 4
    assert {u["region_code"]: u["first_seen"] for u in by_batch["units"]} == {
        VILLAGE: date(2026, 9, 1), OTHER_VILLAGE: date(2026, 9, 1)}
