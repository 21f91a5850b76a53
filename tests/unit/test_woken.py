"""shared/aio.py ``woken``: a service loop's wait for its wake-up never swallows a cancellation.

The loops (outbox relay, audit sealer, verification, payouts, channel feedback) used
``asyncio.wait_for(event.wait(), timeout)``; on Python 3.11, a ``set()`` and a ``cancel()`` in the
same loop iteration made it return normally and drop the cancel, so ``stop()`` awaited a loop
that went on forever (tests hung in their app's shutdown: a commit woke the sealer just then)."""
from __future__ import annotations

import asyncio

import pytest

from shared.aio import woken


async def _service_loop(wake: asyncio.Event, rounds: list[int]) -> None:
    while True:  # the shape of every service loop: a round, then wait for a wake-up or the interval
        rounds.append(1)
        await woken(wake, 30.0)
        wake.clear()


async def test_a_cancel_that_arrives_with_a_wake_up_stops_the_loop() -> None:
    for _ in range(20):
        wake, rounds = asyncio.Event(), []
        task = asyncio.create_task(_service_loop(wake, rounds))
        await asyncio.sleep(0)  # the loop is waiting
        wake.set()  # a commit wakes it ...
        task.cancel()  # ... in the same iteration as stop() cancels it
        done, _ = await asyncio.wait({task}, timeout=2.0)
        assert done, "the loop missed its cancellation"
        assert task.cancelled()


async def test_woken_tells_a_wake_up_from_the_interval() -> None:
    wake = asyncio.Event()
    assert await woken(wake, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, wake.set)
    assert await woken(wake, 5.0) is True


@pytest.mark.parametrize("when", ["before", "while waiting"])
async def test_a_plain_cancel_reaches_the_waiter(when: str) -> None:
    wake = asyncio.Event()
    task = asyncio.create_task(woken(wake, 30.0))
    if when == "while waiting":
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
