"""Kafka bus (aiokafka): topic per producer/aggregate, key = subject, consumer groups,
offsets committed only after the handler has stored its effect."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.logging import get_logger
from shared.messaging.bus import (Bus, BatchMessageHandler, BusUnavailable, IncomingMessage, MessageHandler,
                                  OutgoingMessage)

log = get_logger("bus.kafka")


class KafkaBus(Bus):
    def __init__(self, bootstrap_servers: str, *, client_id: str, idempotence: bool = True,
                 partitions: int = 3, fetch_max_wait_ms: int = 5, request_timeout_ms: int = 10000,
                 max_batch_bytes: int = 512 * 1024, session_timeout_ms: int = 10000) -> None:
        self.bootstrap = bootstrap_servers
        self.session_timeout_ms = session_timeout_ms
        self.max_batch_bytes = max_batch_bytes
        self.client_id = client_id
        self.idempotence = idempotence
        self.partitions = partitions
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._subs: list[tuple[str, list[str], MessageHandler, BatchMessageHandler | None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._consumers: dict[str, AIOKafkaConsumer] = {}
        self._known_topics: set[str] = set()
        self._running = False
        self._lag: dict[tuple[str, str], int] = {}
        self._positions: dict[tuple[str, TopicPartition], int] = {}

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        for group, topics, handler, batch_handler in self._subs:
            self._tasks.append(asyncio.create_task(self._consume_forever(group, topics, handler, batch_handler)))
        # The producer connects lazily so a service starts (and accepts work into its
        # outbox) while the broker is down.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ensure_producer(), timeout=5)

    async def stop(self) -> None:
        self._running = False
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    def subscribe(self, group: str, topics: list[str], handler: MessageHandler, *,
                  batch_handler: BatchMessageHandler | None = None) -> None:
        self._subs.append((group, topics, handler, batch_handler))
        if self._running:
            self._tasks.append(asyncio.create_task(self._consume_forever(group, topics, handler, batch_handler)))

    async def healthy(self) -> bool:
        try:
            await asyncio.wait_for(self._ensure_producer(), timeout=3)
            assert self._producer is not None
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=3)
            return True
        except Exception:
            return False

    def lag(self) -> dict[tuple[str, str], int]:
        return dict(self._lag)

    # -- producing ---------------------------------------------------------------------
    async def _ensure_producer(self) -> AIOKafkaProducer:
        async with self._producer_lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap, client_id=self.client_id,
                    enable_idempotence=self.idempotence, acks="all", linger_ms=1,
                    max_batch_size=self.max_batch_bytes,
                    request_timeout_ms=self.request_timeout_ms,
                )
                try:
                    await producer.start()
                except Exception:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def ensure_topics(self, topics: list[str]) -> None:
        missing = [t for t in topics if t not in self._known_topics]
        if not missing:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=f"{self.client_id}-admin",
                                    request_timeout_ms=self.request_timeout_ms)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            new = [NewTopic(t, self.partitions, 1) for t in missing if t not in existing]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(new)
            self._known_topics.update(missing)
        finally:
            await admin.close()

    async def publish(self, messages: list[OutgoingMessage]) -> None:
        if not messages:
            return
        try:
            await self.ensure_topics(sorted({m.topic for m in messages}))
            producer = await self._ensure_producer()
            futures = []
            for m in messages:
                headers = [(k, v.encode()) for k, v in m.headers.items()]
                futures.append(await producer.send(m.topic, m.value, key=m.key.encode(), headers=headers))
            await asyncio.gather(*futures)
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:
            # A restarted broker may have lost its topics (memory storage): check them again.
            self._known_topics.clear()
            await self._reset_producer()
            raise BusUnavailable(str(exc) or type(exc).__name__) from exc

    async def _reset_producer(self) -> None:
        async with self._producer_lock:
            if self._producer is not None:
                with contextlib.suppress(Exception):
                    await self._producer.stop()
                self._producer = None

    # -- consuming ---------------------------------------------------------------------
    async def _consume_forever(self, group: str, topics: list[str], handler: MessageHandler,
                               batch_handler: BatchMessageHandler | None = None) -> None:
        backoff = 0.5
        while self._running:
            consumer: AIOKafkaConsumer | None = None
            try:
                await self.ensure_topics(topics)
                consumer = AIOKafkaConsumer(
                    *topics, bootstrap_servers=self.bootstrap, group_id=group,
                    client_id=f"{self.client_id}-{group}", enable_auto_commit=False,
                    auto_offset_reset="earliest", fetch_max_wait_ms=self.fetch_max_wait_ms,
                    max_poll_records=500, request_timeout_ms=max(self.request_timeout_ms, 40000),
                    session_timeout_ms=self.session_timeout_ms,
                    heartbeat_interval_ms=max(100, self.session_timeout_ms // 3),
                )
                await consumer.start()
                self._consumers[group] = consumer
                backoff = 0.5
                await self._consume(consumer, group, handler, batch_handler)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker down or rebalance trouble: reconnect with backoff
                log.warning("consumer_reconnect", group=group, error=str(exc) or type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self._consumers.pop(group, None)
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        await consumer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer, group: str, handler: MessageHandler,
                       batch_handler: BatchMessageHandler | None = None) -> None:
        while self._running:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            if batch_handler is not None:
                await self._handle_fetch(consumer, group, batches, batch_handler)
            else:
                for tp, records in batches.items():
                    await self._handle_partition(consumer, group, tp, records, handler)
            self._update_lag(consumer, group)

    async def _handle_fetch(self, consumer: AIOKafkaConsumer, group: str, batches: dict[TopicPartition, list],
                            batch_handler: BatchMessageHandler) -> None:
        """Everything one fetch returned, of every partition, stored by one call (one transaction
        in the consumer): at a few events per partition per fetch, a transaction per partition
        cost more than the events themselves. Per-key order holds: a key lives in one partition,
        and each partition's records stay in offset order."""
        batches = {tp: records for tp, records in batches.items() if records}
        if not batches:
            return
        msgs = [_incoming(rec) for records in batches.values() for rec in records]
        try:
            await batch_handler(msgs)
        except Exception as exc:
            # Not all effects are stored: the whole fetch comes again (the inbox turns what was
            # stored into duplicates).
            log.warning("consumer_handler_error", group=group, partitions=len(batches), events=len(msgs),
                        error=str(exc)[:300])
            for tp, records in batches.items():
                consumer.seek(tp, records[0].offset)
            await asyncio.sleep(0.2)
            return
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        await consumer.commit(offsets)
        for tp, done in offsets.items():
            self._positions[(group, tp)] = done

    async def _handle_partition(self, consumer: AIOKafkaConsumer, group: str, tp: TopicPartition,
                                records: list, handler: MessageHandler) -> None:
        done = None
        for rec in records:
            try:
                await handler(_incoming(rec))
            except Exception as exc:
                # The effect was not stored: rewind this partition so the record is
                # redelivered; other partitions go on (order only matters per key).
                log.warning("consumer_handler_error", group=group, topic=rec.topic,
                            partition=rec.partition, offset=rec.offset, error=str(exc)[:300])
                consumer.seek(tp, rec.offset)
                await asyncio.sleep(0.2)
                break
            done = rec.offset + 1
        if done is not None:
            await consumer.commit({tp: done})
            self._positions[(group, tp)] = done

    def _update_lag(self, consumer: AIOKafkaConsumer, group: str) -> None:
        per_topic: dict[str, int] = {}
        for tp in consumer.assignment():
            hw = consumer.highwater(tp)
            committed = self._positions.get((group, tp))
            if hw is None or committed is None:
                continue
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(0, hw - committed)
        for topic, lag in per_topic.items():
            self._lag[(group, topic)] = lag


def _incoming(rec: Any) -> IncomingMessage:
    return IncomingMessage(topic=rec.topic, key=rec.key.decode() if rec.key else None, value=rec.value,
                           headers={k: v.decode(errors="replace") for k, v in (rec.headers or ())},
                           partition=rec.partition, offset=rec.offset)
