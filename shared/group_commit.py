"""Group commit: requests that arrive while earlier ones are being written go together into the
next transaction.

A request-sized use case on PostgreSQL costs a handful of round trips (BEGIN, its reads, its
writes, COMMIT) and a WAL flush; under load those, not the rules, are what a service spends its
CPU on. ``GroupCommit(run)`` lets each caller ``await group.submit(item)`` as if it were alone:
a request that finds no group in flight is run at once (no added latency when the service is
idle); the ones that arrive meanwhile queue and the next group takes them all (up to
``max_group``). ``run(items)`` answers one result per item, in order — a value, or the
exception that item alone raises — so one refused request never fails its neighbours.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, run: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]], *,
                 writers: int = 1, max_group: int = 64, name: str = "group-commit") -> None:
        self._run = run
        self.name = name
        self._writers = max(1, writers)
        self._max = max(1, max_group)
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.groups = 0  # how many groups ran, for tests and metrics
        self.items = 0

    async def submit(self, item: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._in_flight < self._writers:
            self._in_flight += 1
            task = asyncio.create_task(self._drain(), name=self.name)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # A cancelled caller (its client went away) does not cancel the group: what the group
        # commits stays committed, like a lone request whose answer was lost.
        return await asyncio.shield(fut)

    async def _drain(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue[:self._max], self._queue[self._max:]
                self.groups += 1
                self.items += len(group)
                try:
                    results: Sequence[R | BaseException] = await self._run([item for item, _ in group])
                    if len(results) != len(group):
                        raise RuntimeError(f"group commit: {len(results)} results for {len(group)} items")
                except Exception as exc:  # the group's own failure is every member's
                    results = [exc] * len(group)
                except BaseException:  # cancelled (shutdown): nobody may wait forever
                    for _, fut in group + self._queue:
                        if not fut.done():
                            fut.set_exception(RuntimeError("the service is stopping"))
                    self._queue = []
                    raise
                for (_, fut), result in zip(group, results):
                    if fut.done():
                        continue
                    if isinstance(result, BaseException):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)
        finally:
            self._in_flight -= 1
