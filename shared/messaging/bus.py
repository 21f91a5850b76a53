"""The event bus interface: at-least-once delivery of envelopes between services."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Awaitable, Callable


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IncomingMessage:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, str]
    partition: int = 0
    offset: int = 0


MessageHandler = Callable[[IncomingMessage], Awaitable[None]]
# Several messages of one topic partition, in order; same contract as MessageHandler for all of them.
BatchMessageHandler = Callable[[list[IncomingMessage]], Awaitable[None]]


class BusUnavailable(RuntimeError):
    """The broker cannot take messages now; the outbox keeps them until it can."""


class Bus(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def publish(self, messages: list[OutgoingMessage]) -> None:
        """Return only after the bus has acknowledged every message; raise otherwise."""

    @abc.abstractmethod
    def subscribe(self, group: str, topics: list[str], handler: MessageHandler, *,
                  batch_handler: BatchMessageHandler | None = None) -> None:
        """Deliver every message of ``topics`` to ``handler`` once per consumer group.
        The handler returning means the effect is stored; raising means redeliver. With a
        ``batch_handler``, what one fetch returned (every partition's records, each partition in
        offset order) goes to it in one call
        (returning: all stored; raising: all redelivered)."""

    @abc.abstractmethod
    async def healthy(self) -> bool: ...

    def lag(self) -> dict[tuple[str, str], int]:
        """Unconsumed messages per (group, topic)."""
        return {}
