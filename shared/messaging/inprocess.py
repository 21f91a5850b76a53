"""In-process bus for the embedded run: publish hands each message to every subscribed
group and returns once they have stored their effect, so the outbox row is marked sent
only after delivery — a crash in between redelivers from the outbox, nothing is lost."""
from __future__ import annotations

import asyncio
from collections import defaultdict

from shared.messaging.bus import Bus, BatchMessageHandler, IncomingMessage, MessageHandler, OutgoingMessage


class InProcessBus(Bus):
    def __init__(self) -> None:
        self._subs: dict[str, list[tuple[str, MessageHandler, BatchMessageHandler | None]]] = defaultdict(list)
        self._offsets: dict[str, int] = defaultdict(int)
        # Per topic, one delivery at a time keeps each subject's events in order.
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._started = 0

    async def start(self) -> None:
        self._started += 1

    async def stop(self) -> None:
        self._started = max(0, self._started - 1)

    def subscribe(self, group: str, topics: list[str], handler: MessageHandler, *,
                  batch_handler: BatchMessageHandler | None = None) -> None:
        for topic in topics:
            if all(g != group for g, _, _ in self._subs[topic]):
                self._subs[topic].append((group, handler, batch_handler))

    async def publish(self, messages: list[OutgoingMessage]) -> None:
        # Consecutive messages of one topic go together (what the relay publishes at once is
        # what a Kafka consumer would fetch at once), so batch consumers batch here too.
        runs: list[list[OutgoingMessage]] = []
        for msg in messages:
            if runs and runs[-1][0].topic == msg.topic:
                runs[-1].append(msg)
            else:
                runs.append([msg])
        for run in runs:
            topic = run[0].topic
            async with self._locks[topic]:
                incoming = []
                for msg in run:
                    incoming.append(IncomingMessage(topic=topic, key=msg.key, value=msg.value,
                                                    headers=dict(msg.headers), offset=self._offsets[topic]))
                    self._offsets[topic] += 1
                for _, handler, batch_handler in list(self._subs.get(topic, ())):
                    if batch_handler is not None:
                        await batch_handler(incoming)
                    else:
                        for one in incoming:
                            await handler(one)

    async def healthy(self) -> bool:
        return True
