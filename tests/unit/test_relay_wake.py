"""The outbox relay never loses a wake-up: a commit that lands while a round is reading the
outbox is published right after that round, not a poll interval later."""
from __future__ import annotations

import asyncio
import time

from shared.messaging.relay import OutboxRelay


class ScriptedRelay(OutboxRelay):
    """publish_pending replaced: the first round finds nothing, and a use case commits (and wakes
    the relay) while that round is still reading; the second round finds its row."""

    def __init__(self) -> None:
        super().__init__(None, None, service="test", poll_interval=5.0)  # type: ignore[arg-type]
        self.rounds: list[float] = []

    async def publish_pending(self) -> int:
        self.rounds.append(time.monotonic())
        if len(self.rounds) == 1:
            await asyncio.sleep(0.01)
            self.wake()  # the commit lands now, after this round's SELECT saw nothing
            await asyncio.sleep(0.01)
            return 0
        return 1 if len(self.rounds) == 2 else 0


async def test_wake_during_an_empty_round_is_not_lost() -> None:
    relay = ScriptedRelay()
    await relay.start()
    try:
        deadline = time.monotonic() + 2.0
        while len(relay.rounds) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await relay.stop()
    assert len(relay.rounds) >= 2, "the wake-up was lost: the event would wait for the 5 s poll"
    assert relay.rounds[1] - relay.rounds[0] < 1.0


class CountingRelay(OutboxRelay):
    """publish_pending replaced: counts the rows committed (``pending``) that each round takes."""

    def __init__(self, linger_s: float) -> None:
        super().__init__(None, None, service="test", poll_interval=5.0, linger_s=linger_s)  # type: ignore[arg-type]
        self.pending = 0
        self.rounds: list[int] = []
        self.calls = 0

    async def publish_pending(self) -> int:
        self.calls += 1
        taken, self.pending = self.pending, 0
        if taken:
            self.rounds.append(taken)
        return taken


async def _three_commits(relay: CountingRelay) -> list[int]:
    await relay.start()
    try:
        await asyncio.sleep(0.05)
        for _ in range(3):  # three use cases commit 10 ms apart, each waking the relay
            relay.pending += 1
            relay.wake()
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
    finally:
        await relay.stop()
    return relay.rounds


async def test_linger_lets_commits_right_behind_join_one_round() -> None:
    assert await _three_commits(CountingRelay(linger_s=0.1)) == [3]
    assert await _three_commits(CountingRelay(linger_s=0.0)) == [1, 1, 1]  # without it: a round each


async def test_a_part_batch_is_not_followed_by_an_empty_round() -> None:
    """A round that took fewer rows than its batch size took everything committed before its read;
    the next round waits for a wake-up (or the poll) instead of reading an empty outbox at once."""
    relay = CountingRelay(linger_s=0.0)
    relay.batch_size = 10
    relay.pending = 3
    await relay.start()
    try:
        await asyncio.sleep(0.2)
    finally:
        await relay.stop()
    assert relay.rounds == [3]
    assert relay.calls == 1, f"{relay.calls} rounds for one part batch"


async def test_a_full_batch_is_followed_by_the_next_round_at_once() -> None:
    relay = CountingRelay(linger_s=0.0)
    relay.batch_size = 2

    async def in_batches() -> int:
        n = min(relay.pending, relay.batch_size)
        relay.pending -= n
        if n:
            relay.rounds.append(n)
        return n

    relay.publish_pending = in_batches  # type: ignore[method-assign]
    relay.pending = 5
    await relay.start()
    try:
        await asyncio.sleep(0.2)  # the poll is 5 s: only "more are waiting" explains further rounds
    finally:
        await relay.stop()
    assert relay.rounds == [2, 2, 1]
