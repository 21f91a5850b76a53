"""The batch path of the idempotent consumer (one transaction per fetched batch) on a real
database (SQLite and PostgreSQL): duplicates inside a batch and across batches, a poison event
and a failing handler inside a batch, a crash mid-batch — nothing lost, nothing doubled."""
from __future__ import annotations

import sqlalchemy as sa

from services.eligibility.models import cases
from shared.events.intake import ApplicationSubmitted
from shared.messaging.bus import IncomingMessage
from shared.messaging.envelope import Envelope
from shared.messaging.tables import dead_letters, inbox, outbox
from tests.integration.test_messaging import RecordingBus, count, eligibility, message, submitted
from tests.support import running


class Crash(BaseException):
    """Stands for the process dying mid-batch: nothing catches it, nothing more runs."""


def batch(n: int, start: int = 0) -> list[IncomingMessage]:
    return [message(submitted(f"app-{i}", i + 1)) for i in range(start, start + n)]


async def application_ids(rt) -> list[str]:
    async with rt.session_factory() as s:
        return sorted((await s.execute(sa.select(cases.c.application_id))).scalars())


async def opened_events(rt) -> list[str]:
    async with rt.session_factory() as s:
        return sorted((await s.execute(sa.select(outbox.c.key).where(
            outbox.c.type == "eligibility.case.opened"))).scalars())


async def test_batch_stores_every_event_once_in_one_go(database_url: str) -> None:
    app = eligibility(database_url, RecordingBus())
    async with running(app):
        rt = app.state.runtime
        consumer = rt.consumers[0]
        msgs = batch(50)
        await consumer.handle_batch(msgs)
        expected = sorted(f"app-{i}" for i in range(50))
        assert await application_ids(rt) == expected
        assert await opened_events(rt) == expected  # one case.opened each, keyed by the application
        assert await count(rt, inbox) == 50
        assert consumer.stats.handled == 50 and consumer.stats.duplicates == 0
        # the whole batch again (a redelivery after a lost offset commit): no new effect
        await consumer.handle_batch(msgs)
        assert await application_ids(rt) == expected
        assert await count(rt, outbox) == 50
        assert consumer.stats.duplicates == 50


async def test_duplicates_inside_one_batch_have_one_effect(database_url: str) -> None:
    app = eligibility(database_url, RecordingBus())
    async with running(app):
        rt = app.state.runtime
        consumer = rt.consumers[0]
        await consumer.handle(message(submitted("app-0", 1), event_id="00000000-0000-0000-0000-000000000000"))
        same_event = message(submitted("app-1", 2), event_id="11111111-1111-1111-1111-111111111111")
        resent_app = message(submitted("app-2", 3))  # the same application under two event ids
        msgs = [same_event, message(submitted("app-0", 1), event_id="00000000-0000-0000-0000-000000000000"),
                resent_app, same_event, message(submitted("app-2", 3)), message(submitted("app-3", 4))]
        await consumer.handle_batch(msgs)
        assert await application_ids(rt) == ["app-0", "app-1", "app-2", "app-3"]
        assert await opened_events(rt) == ["app-0", "app-1", "app-2", "app-3"]
        # inbox: app-0's (before), app-1's once, both event ids of app-2, app-3's
        assert await count(rt, inbox) == 5
        assert consumer.stats.duplicates == 2  # app-0 seen before, app-1's second copy


async def test_poison_and_failing_event_in_a_batch_block_and_lose_nothing(database_url: str) -> None:
    app = eligibility(database_url, RecordingBus())
    async with running(app):
        rt = app.state.runtime
        consumer = rt.consumers[0]
        real = consumer.handlers[ApplicationSubmitted.TYPE]
        calls: list[str] = []

        async def fails_for_app_3(tx, env, data) -> None:
            calls.append(data.application_id)
            if data.application_id == "app-3":
                raise RuntimeError("handler bug for this one event")
            await real(tx, env, data)

        # the generic path (no set-based batch handler) is the one with a per-event handler
        consumer.handlers = {ApplicationSubmitted.TYPE: fails_for_app_3}
        consumer.batch_handlers = {}
        wrong = Envelope(type=ApplicationSubmitted.TYPE, source="intake", subject="s", data={"nope": 1})
        msgs = batch(3) + [IncomingMessage(topic="intake.application", key="k", value=b"{not json", headers={}),
                           message(submitted("app-3", 4)),
                           IncomingMessage(topic="intake.application", key="s", value=wrong.to_bytes(), headers={})
                           ] + batch(3, start=4)
        await consumer.handle_batch(msgs)
        assert await application_ids(rt) == ["app-0", "app-1", "app-2", "app-4", "app-5", "app-6"]
        assert await opened_events(rt) == ["app-0", "app-1", "app-2", "app-4", "app-5", "app-6"]
        async with rt.session_factory() as s:
            dead = (await s.execute(sa.select(dead_letters.c.error, dead_letters.c.attempts)
                                    .order_by(dead_letters.c.id))).all()
            inboxed = set((await s.execute(sa.select(inbox.c.event_id))).scalars())
        assert len(dead) == 3
        assert [d.attempts for d in dead] == [1, 1, consumer.max_retries + 1]
        assert "poison" in dead[0].error and "poison" in dead[1].error and "handler bug" in dead[2].error
        assert Envelope.from_bytes(msgs[4].value).id not in inboxed  # a dead letter is not "processed"
        assert len(inboxed) == 6
        # app-3 was tried in the batch, then once plus its retries on its own
        assert calls.count("app-3") == 1 + consumer.max_retries + 1
        assert consumer.stats.handled == 6 and consumer.stats.dead_lettered == 3


async def test_crash_mid_batch_leaves_nothing_and_the_redelivery_everything_once(database_url: str) -> None:
    app = eligibility(database_url, RecordingBus())
    async with running(app):
        rt = app.state.runtime
        consumer = rt.consumers[0]
        real = consumer.batch_handlers[ApplicationSubmitted.TYPE]
        crash = {"armed": True}

        async def dies_after_storing(tx, events) -> None:
            await real(tx, events)  # the cases and their outbox rows are written …
            if crash["armed"]:
                raise Crash()  # … and the process dies before the commit

        consumer.batch_handlers = {ApplicationSubmitted.TYPE: dies_after_storing}
        msgs = batch(20)
        try:
            await consumer.handle_batch(msgs)
        except Crash:
            pass
        else:
            raise AssertionError("the crash should have propagated")
        assert await count(rt, cases) == 0
        assert await count(rt, inbox) == 0
        assert await count(rt, outbox) == 0
        assert await count(rt, dead_letters) == 0
        crash["armed"] = False
        await consumer.handle_batch(msgs)  # the bus redelivers the uncommitted batch
        await consumer.handle_batch(msgs)  # and once more, as after a lost offset commit
        expected = sorted(f"app-{i}" for i in range(20))
        assert await application_ids(rt) == expected
        assert await opened_events(rt) == expected
        assert await count(rt, inbox) == 20


async def test_in_process_bus_delivers_relay_batches_to_the_batch_path(database_url: str) -> None:
    """The relay publishes what is pending at once; the in-process bus hands a run of one topic
    to the batch handler in one call (one transaction), and the events still arrive in order."""
    bus = RecordingBus()
    seen: list[list[str]] = []
    app = eligibility(database_url, bus)
    async with running(app):
        rt = app.state.runtime
        consumer = rt.consumers[0]
        real = consumer.batch_handlers[ApplicationSubmitted.TYPE]

        async def spy(tx, events) -> None:
            seen.append([data.application_id for _, data in events])
            await real(tx, events)

        consumer.batch_handlers = {ApplicationSubmitted.TYPE: spy}
        outgoing = [m for m in batch(10)]
        from shared.messaging.bus import OutgoingMessage
        await bus.publish([OutgoingMessage(topic=m.topic, key=m.key or "", value=m.value) for m in outgoing])
        assert seen == [[f"app-{i}" for i in range(10)]]
        assert await application_ids(rt) == sorted(f"app-{i}" for i in range(10))


async def test_a_batch_of_applications_is_few_statements_on_postgresql(database_url: str) -> None:
    """Eligibility's consumer is on every case's path: on PostgreSQL a fetched run of applications
    costs the inbox insert, one look-up of existing cases and one statement with the vault's
    numbers, the cases and their outbox events (shared/writes.py RowSets) — for 3 events or 30."""
    import asyncio
    app = eligibility(database_url, RecordingBus())
    async with running(app):
        rt = app.state.runtime
        consumer = rt.consumers[0]
        me = asyncio.current_task()
        statements: list[str] = []
        inbox_texts: set[str] = set()

        def listener(conn, cur, stmt, *a) -> None:
            if asyncio.current_task() is me:
                statements.append(stmt)
        sa.event.listen(rt.engine.sync_engine, "before_cursor_execute", listener)
        for size, start in ((3, 0), (30, 3)):
            statements.clear()
            await consumer.handle_batch(batch(size, start))
            if database_url.startswith("postgresql"):
                inbox = [s for s in statements if s.startswith("INSERT INTO inbox")]
                writes = [s for s in statements if "unnest" in s and s not in inbox]
                assert len(statements) <= 4 and len(writes) == 1, statements
                # the inbox rows too: one statement of arrays, the same text for 3 rows or 30
                assert len(inbox) == 1 and "unnest" in inbox[0], inbox
                inbox_texts.add(inbox[0])
                for table in ("person_vault", "cases", "outbox"):
                    assert f" {table} " in writes[0], table
        sa.event.remove(rt.engine.sync_engine, "before_cursor_execute", listener)
        assert len(inbox_texts) <= 1
        assert await application_ids(rt) == sorted(f"app-{i}" for i in range(33))
        assert await opened_events(rt) == sorted(f"app-{i}" for i in range(33))
