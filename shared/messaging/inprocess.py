"""In-process bus for the embedded run: publish hands each message to every subscribed
group and returns once they have stored their effect, so the outbox row is marked sent
only after delivery — a crash in between redelivers from the outbox, nothing is lost."""
from __future__ import annotations

import asyncio
from collections import defaultdict

from shared.messaging.bus import Bus, IncomingMessage, MessageHandler, OutgoingMessage


class InProcessBus(Bus):
    def __init__(self) -> None:
        self._subs: dict[str, list[tuple[str, MessageHandler]]] = defaultdict(list)
        self._offsets: dict[str, int] = defaultdict(int)
        # Per topic, one delivery at a time keeps each subject's events in order.
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._started = 0

    async def start(self) -> None:
        self._started += 1

    async def stop(self) -> None:
        self._started = max(0, self._started - 1)

    def subscribe(self, group: str, topics: list[str], handler: MessageHandler) -> None:
        for topic in topics:
            if all(g != group for g, _ in self._subs[topic]):
                self._subs[topic].append((group, handler))

    async def publish(self, messages: list[OutgoingMessage]) -> None:
        for msg in messages:
            async with self._locks[msg.topic]:
                offset = self._offsets[msg.topic]
                self._offsets[msg.topic] += 1
                incoming = IncomingMessage(topic=msg.topic, key=msg.key, value=msg.value,
                                           headers=dict(msg.headers), offset=offset)
                for _, handler in list(self._subs.get(msg.topic, ())):
                    await handler(incoming)

    async def healthy(self) -> bool:
        return True
