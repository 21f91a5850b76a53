"""asyncio helpers every service loop uses."""
from __future__ import annotations

import asyncio


async def woken(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it was set.

    Not ``asyncio.wait_for(event.wait(), timeout)``: on Python 3.11 that wraps the wait in a task
    and, when a cancellation arrives in the same loop iteration as the ``set()``, returns the
    result and drops the cancellation. A service loop waiting that way missed ``stop()``'s cancel
    whenever a commit woke it at shutdown, and ``stop()`` then waited for it forever (seen as
    tests that hung in their app's shutdown). ``asyncio.timeout`` waits in the caller's own task,
    so a cancellation always reaches it."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False
