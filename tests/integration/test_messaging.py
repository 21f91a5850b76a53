"""Outbox, relay, inbox and dead letters on a real database (SQLite and PostgreSQL)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.eligibility.app import create_app as create_eligibility
from services.eligibility.models import cases
from services.eligibility.settings import Settings as EligibilitySettings
from shared.events.intake import ApplicationSubmitted
from shared.messaging.bus import Bus, BusUnavailable, IncomingMessage, OutgoingMessage
from shared.messaging.envelope import Envelope
from shared.messaging.inprocess import InProcessBus
from shared.messaging.tables import dead_letters, inbox, outbox
from tests.support import TOWNSHIP, make_id, running


def submitted(app_id: str = "app-1", seq: int = 1) -> ApplicationSubmitted:
    now = datetime.now(timezone.utc)
    pid = make_id(datetime(1950, 3, 1).date(), seq)
    return ApplicationSubmitted(
        application_id=app_id, channel="window", program="dibao", region_code=TOWNSHIP,
        handling_region_code=TOWNSHIP, area="urban", applicant_person_id=pid,
        household={"members": [{"person_id": pid, "birth_date": "1950-03-01"}]},
        documents_complete=True, received_at=now, due_by=now.date())


def message(data: ApplicationSubmitted, event_id: str | None = None) -> IncomingMessage:
    env = Envelope(type=data.TYPE, source="intake", subject=data.application_id, data=data.model_dump(mode="json"))
    if event_id:
        env = env.model_copy(update={"id": event_id})
    return IncomingMessage(topic=env.topic, key=env.subject, value=env.to_bytes(), headers={})


class RecordingBus(InProcessBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[OutgoingMessage] = []
        self.down = False

    async def publish(self, messages: list[OutgoingMessage]) -> None:
        if self.down:
            raise BusUnavailable("broker down")
        self.published.extend(messages)
        await super().publish(messages)


def eligibility(database_url: str, bus: Bus):
    return create_eligibility(EligibilitySettings(database_url=database_url, consumer_retry_backoff_s=0.01,
                                                  outbox_poll_interval_s=0.05), bus=bus)


async def drained(relay, seconds: float = 10.0) -> None:
    """Wakes the relay and waits until its outbox backlog is empty."""
    relay.wake()
    for _ in range(int(seconds / 0.05)):
        if await relay.backlog() == 0:
            return
        await asyncio.sleep(0.05)
    assert await relay.backlog() == 0


async def count(runtime, table: sa.Table) -> int:
    async with runtime.session_factory() as s:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(table)))


async def test_same_event_delivered_twice_has_one_effect(database_url: str) -> None:
    bus = RecordingBus()
    app = eligibility(database_url, bus)
    async with running(app):
        rt = app.state.runtime
        consumer = rt.consumers[0]
        msg = message(submitted(), event_id="11111111-1111-1111-1111-111111111111")
        await consumer.handle(msg)
        await consumer.handle(msg)
        assert await count(rt, cases) == 1
        assert await count(rt, inbox) == 1
        assert await count(rt, outbox) == 1  # one eligibility.case.opened
        assert consumer.stats.duplicates == 1


async def test_concurrent_duplicate_deliveries_have_one_effect(database_url: str) -> None:
    app = eligibility(database_url, RecordingBus())
    async with running(app):
        rt = app.state.runtime
        msg = message(submitted(), event_id="22222222-2222-2222-2222-222222222222")
        await asyncio.gather(*[rt.consumers[0].handle(msg) for _ in range(4)])
        assert await count(rt, cases) == 1


async def test_outbox_row_commits_with_state_and_relay_marks_it_sent(database_url: str) -> None:
    bus = RecordingBus()
    app = eligibility(database_url, bus)
    async with running(app):
        rt = app.state.runtime
        await rt.consumers[0].handle(message(submitted()))
        async def sent() -> bool:
            async with rt.session_factory() as s:
                return (await s.scalar(sa.select(sa.func.count()).select_from(outbox)
                                       .where(outbox.c.sent_at.is_(None)))) == 0
        for _ in range(100):
            if await sent():
                break
            await asyncio.sleep(0.05)
        assert await sent()
        assert [m.topic for m in bus.published] == ["eligibility.case"]


async def test_rolled_back_use_case_leaves_no_event(database_url: str) -> None:
    app = eligibility(database_url, RecordingBus())
    async with running(app):
        rt = app.state.runtime
        with pytest.raises(RuntimeError):
            async with rt.uow() as tx:
                tx.emit(submitted(), subject="x")
                raise RuntimeError("use case failed")
        assert await count(rt, outbox) == 0


async def test_poison_event_is_dead_lettered_and_consumer_keeps_going(database_url: str) -> None:
    bus = RecordingBus()
    app = eligibility(database_url, bus)
    async with running(app):
        rt = app.state.runtime
        consumer = rt.consumers[0]
        await consumer.handle(IncomingMessage(topic="intake.application", key="k", value=b"{not json", headers={}))
        bad = Envelope(type=ApplicationSubmitted.TYPE, source="intake", subject="s", data={"application_id": 1})
        await consumer.handle(IncomingMessage(topic="intake.application", key="s", value=bad.to_bytes(), headers={}))
        await consumer.handle(message(submitted("app-2", 2)))
        assert await count(rt, dead_letters) == 2
        assert await count(rt, cases) == 1
        assert [m.topic for m in bus.published if m.topic.endswith(".dlq")] == ["intake.application.dlq"] * 2


async def test_failing_handler_retries_then_dead_letters(database_url: str) -> None:
    app = eligibility(database_url, RecordingBus())
    async with running(app):
        rt = app.state.runtime
        consumer = rt.consumers[0]
        calls = 0

        async def broken(tx, env, data):
            nonlocal calls
            calls += 1
            raise ValueError("downstream rule failed")

        consumer.handlers = {ApplicationSubmitted.TYPE: broken}
        await consumer.handle(message(submitted()))
        assert calls == rt.settings.consumer_max_retries + 1
        async with rt.session_factory() as s:
            row = (await s.execute(sa.select(dead_letters))).mappings().one()
        assert "downstream rule failed" in row["error"]
        assert await count(rt, inbox) == 0  # not marked processed: it can be replayed


async def test_bus_down_keeps_events_in_outbox_until_it_returns(database_url: str) -> None:
    bus = RecordingBus()
    bus.down = True
    app = eligibility(database_url, bus)
    async with running(app):
        rt = app.state.runtime
        for i in range(3):
            await rt.consumers[0].handle(message(submitted(f"app-{i}", i + 1)))
        await asyncio.sleep(0.3)
        assert await rt.relay.backlog() == 3
        assert rt.relay.last_error
        bus.down = False
        await drained(rt.relay)
        assert len(bus.published) == 3


async def test_crash_after_commit_before_publish_delivers_after_restart(database_url: str, tmp_path: Path) -> None:
    """The state and its event commit together; a process that dies before publishing leaves
    the event in the outbox, and the next process's relay delivers it."""
    bus = RecordingBus()
    bus.down = True  # the first process never gets to publish
    first = eligibility(database_url, bus)
    async with running(first):
        await first.state.runtime.consumers[0].handle(message(submitted()))
    assert bus.published == []
    bus.down = False
    second = eligibility(database_url, bus)
    async with running(second):
        for _ in range(200):
            if bus.published:
                break
            await asyncio.sleep(0.05)
    assert [m.topic for m in bus.published] == ["eligibility.case"]


@pytest.fixture
def pg_url(pg_databases) -> str:
    return pg_databases.new("relaylock")


async def test_a_relay_without_the_replica_lock_publishes_nothing_until_it_is_free(pg_url: str) -> None:
    """Only one relay per database publishes (per-subject order across replicas). The lock is taken in
    the outbox read itself: while another replica holds it, a round finds nothing and publishes
    nothing; once it is free the rows go out, each once."""
    from shared.messaging.relay import _PG_RELAY_LOCK

    bus = RecordingBus()
    app = eligibility(pg_url, bus)
    async with running(app):
        rt = app.state.runtime
        async with rt.engine.connect() as other:  # the other replica's relay
            await other.execute(sa.select(sa.func.pg_advisory_lock(_PG_RELAY_LOCK)))
            for i in range(3):
                await rt.consumers[0].handle(message(submitted(f"app-lock-{i}", seq=i + 1)))
            assert await rt.relay.publish_pending() == 0
            await asyncio.sleep(0.2)  # the background relay's polls and wake-ups find nothing either
            assert bus.published == []
            assert await rt.relay.backlog() == 3
            await other.execute(sa.select(sa.func.pg_advisory_unlock(_PG_RELAY_LOCK)))
            await other.commit()
        await drained(rt.relay)
        assert sorted(m.key for m in bus.published) == ["app-lock-0", "app-lock-1", "app-lock-2"]
