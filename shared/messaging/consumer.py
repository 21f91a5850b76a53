"""Idempotent event consumer: the effect and the inbox mark commit in one transaction;
failures retry a bounded number of times, then the event goes to the dead-letter topic
with its error and the consumer keeps going.

Batches: the bus hands over what one fetch returned at once (``handle_batch``; several
partitions, each in offset order). The whole batch is one transaction — the inbox rows (one
multi-row insert that skips the event ids already there), every handler's effect and the outbox
rows — so the cost per event is a few statements, not a commit and its fsync. A service may
register a *batch handler* for an event type that stores a run of such events set-based. If
anything in the batch fails, the transaction is rolled back and that batch is handled again one
event at a time (each with its own retries and dead letter), so a poison event never blocks nor
loses the others; a crash mid-batch leaves nothing committed and the bus redelivers the batch."""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable

import orjson
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import metrics
from shared.db import insert_ignore, insert_ignore_many
from shared.events.base import REGISTRY, EventData
from shared.logging import correlation_id_var, get_logger
from shared.messaging.bus import Bus, IncomingMessage, OutgoingMessage
from shared.messaging.envelope import Envelope, dead_letter_topic, topic_of
from shared.messaging.tables import dead_letters, inbox
from shared.messaging.unit_of_work import UnitOfWork

log = get_logger("consumer")

EventHandler = Callable[[UnitOfWork, Envelope, EventData], Awaitable[None]]
# Stores a run of consecutive events of one type (in delivery order) in the caller's transaction.
BatchEventHandler = Callable[[UnitOfWork, list[tuple[Envelope, EventData]]], Awaitable[None]]


class PoisonEvent(Exception):
    """The message can never be handled (unparseable, unknown version, invalid data)."""


@dataclass
class ConsumerStats:
    handled: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


class EventConsumer:
    def __init__(self, *, service: str, group: str, session_factory: async_sessionmaker[AsyncSession],
                 handlers: dict[str, EventHandler], bus: Bus, max_retries: int = 3,
                 retry_backoff_s: float = 0.2, on_commit: Callable[[], None] | None = None,
                 batch_handlers: dict[str, BatchEventHandler] | None = None, batch: bool = True) -> None:
        self.service = service
        self.group = group
        self.session_factory = session_factory
        self.handlers = handlers
        self.bus = bus
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.on_commit = on_commit
        self.batch_handlers = dict(batch_handlers or {})
        self.batch = batch
        self.stats = ConsumerStats()

    @property
    def topics(self) -> list[str]:
        return sorted({topic_of(t) for t in self.handlers})

    def register(self) -> None:
        self.bus.subscribe(self.group, self.topics, self.handle,
                           batch_handler=self.handle_batch if self.batch else None)

    async def handle(self, msg: IncomingMessage) -> None:
        try:
            env = Envelope.from_bytes(msg.value)
            data = self._parse(env)
        except (PoisonEvent, ValidationError, orjson.JSONDecodeError, ValueError) as exc:
            await self._dead_letter(msg, None, f"poison: {exc}", attempts=1)
            return
        handler = self.handlers.get(env.type)
        if handler is None:
            return  # another consumer's event type on a shared topic
        token = correlation_id_var.set(env.correlation_id)
        try:
            last_error = ""
            for attempt in range(1, self.max_retries + 2):
                try:
                    if await self._apply(env, data, handler):
                        self.stats.handled += 1
                        metrics.EVENTS_CONSUMED.labels(self.service, self.group, env.type, "ok").inc()
                    else:
                        self.stats.duplicates += 1
                        metrics.EVENTS_CONSUMED.labels(self.service, self.group, env.type, "duplicate").inc()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("event_handler_failed", consumer=self.group, event_id=env.id, type=env.type,
                                attempt=attempt, error=last_error[:300])
                    if attempt <= self.max_retries:
                        await asyncio.sleep(self.retry_backoff_s * (2 ** (attempt - 1)))
            await self._dead_letter(msg, env, last_error, attempts=self.max_retries + 1)
        finally:
            correlation_id_var.reset(token)

    async def handle_batch(self, msgs: list[IncomingMessage]) -> None:
        """Store the effects of ``msgs`` (each partition's in offset order). Returning means every
        event is stored, was a duplicate, or is dead-lettered; raising means redeliver them all."""
        if len(msgs) == 1:
            await self.handle(msgs[0])
            return
        parsed: list[tuple[IncomingMessage, Envelope, EventData]] = []
        for msg in msgs:
            try:
                env = Envelope.from_bytes(msg.value)
                data = self._parse(env)
            except (PoisonEvent, ValidationError, orjson.JSONDecodeError, ValueError) as exc:
                await self._dead_letter(msg, None, f"poison: {exc}", attempts=1)
                continue
            if env.type in self.handlers:
                parsed.append((msg, env, data))
        if not parsed:
            return
        try:
            outcomes = await self._apply_batch([(env, data) for _, env, data in parsed])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Something in the batch failed and nothing of it was committed: one event at a
            # time now, so only the failing one is retried and, at worst, dead-lettered.
            log.warning("event_batch_failed", consumer=self.group, events=len(parsed),
                        error=f"{type(exc).__name__}: {exc}"[:300])
            for msg, _, _ in parsed:
                await self.handle(msg)
            return
        for (_, env, _), fresh in zip(parsed, outcomes):
            if fresh:
                self.stats.handled += 1
            else:
                self.stats.duplicates += 1
            metrics.EVENTS_CONSUMED.labels(self.service, self.group, env.type, "ok" if fresh else "duplicate").inc()

    async def _apply_batch(self, events: list[tuple[Envelope, EventData]]) -> list[bool]:
        """One transaction: the inbox rows, then each new event's effect in order. Per event:
        True when it was handled now, False when it was a duplicate."""
        outcomes: list[bool] = []
        first: set[str] = set()
        for env, _ in events:  # the same event twice in one batch: the first one counts
            outcomes.append(env.id not in first)
            first.add(env.id)
        now = datetime.now(timezone.utc)
        async with self.session_factory() as session:
            async with session.begin():
                fresh = await insert_ignore_many(session, inbox, [
                    {"consumer": self.group, "event_id": env.id, "type": env.type, "processed_at": now}
                    for (env, _), new in zip(events, outcomes) if new], returning=inbox.c.event_id)
                outcomes = [new and env.id in fresh for (env, _), new in zip(events, outcomes)]
                todo = [(env, data) for (env, data), new in zip(events, outcomes) if new]
                uow = UnitOfWork(None, source=self.service, session=session)
                async with uow:
                    for run in _runs_by_type(todo):
                        batch_handler = self.batch_handlers.get(run[0][0].type)
                        if batch_handler is not None:
                            await batch_handler(uow, run)
                            continue
                        handler = self.handlers[run[0][0].type]
                        for env, data in run:
                            token = correlation_id_var.set(env.correlation_id)
                            try:
                                await handler(uow, env, data)
                            finally:
                                correlation_id_var.reset(token)
            if uow.emitted and self.on_commit:
                self.on_commit()
            uow.run_after_commit()
        return outcomes

    def _parse(self, env: Envelope) -> EventData:
        cls = REGISTRY.get(env.type)
        if cls is None:
            if env.type in self.handlers:
                raise PoisonEvent(f"unknown event type {env.type}")
            return None  # type: ignore[return-value]
        if env.version > cls.VERSION:
            raise PoisonEvent(f"{env.type} version {env.version} is newer than this consumer understands")
        return cls.model_validate(env.data)

    async def _apply(self, env: Envelope, data: EventData, handler: EventHandler) -> bool:
        async with self.session_factory() as session:
            async with session.begin():
                fresh = await insert_ignore(session, inbox, {
                    "consumer": self.group, "event_id": env.id, "type": env.type,
                    "processed_at": datetime.now(timezone.utc)})
                if not fresh:
                    return False
                uow = UnitOfWork(None, source=self.service, session=session)
                async with uow:
                    await handler(uow, env, data)
            if uow.emitted and self.on_commit:
                self.on_commit()
            uow.run_after_commit()
            return True

    async def _dead_letter(self, msg: IncomingMessage, env: Envelope | None, error: str, *, attempts: int) -> None:
        self.stats.dead_lettered += 1
        metrics.DEAD_LETTERS.labels(self.service, self.group).inc()
        log.error("event_dead_lettered", consumer=self.group, topic=msg.topic,
                  event_id=env.id if env else None, error=error[:300])
        async with self.session_factory() as session:
            async with session.begin():
                await session.execute(dead_letters.insert().values(
                    consumer=self.group, topic=msg.topic, event_id=env.id if env else None,
                    type=env.type if env else None, payload=msg.value, error=error[:4000],
                    attempts=attempts, created_at=datetime.now(timezone.utc)))
        # The row above is what operators act on; the topic copy is for other tooling, best effort.
        with contextlib.suppress(Exception):
            await self.bus.publish([OutgoingMessage(
                topic=dead_letter_topic(msg.topic), key=msg.key or "", value=msg.value,
                headers={"error": error[:1000], "consumer": self.group, "original_topic": msg.topic})])


def _runs_by_type(events: list[tuple[Envelope, EventData]]) -> list[list[tuple[Envelope, EventData]]]:
    """Consecutive events of the same type, in order (a batch handler never reorders a partition)."""
    runs: list[list[tuple[Envelope, EventData]]] = []
    for item in events:
        if runs and runs[-1][0][0].type == item[0].type:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


async def count_dead_letters(session_factory: async_sessionmaker[AsyncSession], *, unresolved_only: bool = True) -> int:
    async with session_factory() as session:
        q = sa.select(sa.func.count()).select_from(dead_letters)
        if unresolved_only:
            q = q.where(dead_letters.c.resolved_at.is_(None))
        return int(await session.scalar(q) or 0)
