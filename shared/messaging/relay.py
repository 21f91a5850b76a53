"""Outbox relay: publishes committed outbox rows and marks them sent after the bus acknowledges.

Woken right after a commit (low latency); polling is only the safety net. When the bus is
down it backs off and the rows wait in the outbox — nothing is lost, nothing is reordered.
"""
from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import metrics
from shared.aio import woken
from shared.db import one_of
from shared.logging import get_logger
from shared.messaging.bus import Bus, OutgoingMessage
from shared.messaging.tables import outbox

log = get_logger("outbox.relay")

# One relay per service database at a time keeps per-subject order across replicas.
_PG_RELAY_LOCK = 0x6A69757A6875  # arbitrary constant ("jiuzhu")


class OutboxRelay:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession], bus: Bus, *, service: str,
                 poll_interval: float = 0.5, batch_size: int = 200, max_backoff: float = 5.0,
                 linger_s: float = 0.0) -> None:
        self.session_factory = session_factory
        self.bus = bus
        self.service = service
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.linger_s = linger_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_error: str | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.service}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = self.poll_interval
        while not self._stopping:
            # Cleared before looking, not after: a commit that lands while this round reads the
            # outbox keeps its wake-up (clearing afterwards lost it, and its event waited for the
            # next poll — up to poll_interval on a busy service, where it happened often).
            self._wake.clear()
            try:
                sent = await self.publish_pending()
                self.last_error = None
                backoff = self.poll_interval
                if sent >= self.batch_size:
                    continue  # a full batch: more are waiting
                # A part batch took everything committed before its read; whatever committed
                # since has set the wake-up, so an immediate second round would only find nothing
                # (a transaction of four round trips per batch, half of them empty, at 200/s).
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = str(exc) or type(exc).__name__
                metrics.BUS_PUBLISH_FAILURES.labels(self.service).inc()
                log.warning("outbox_publish_failed", service=self.service, error=self.last_error,
                            retry_in_s=round(backoff, 2))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            await woken(self._wake, self.poll_interval)
            if self.linger_s and self._wake.is_set() and not self._stopping:
                await asyncio.sleep(self.linger_s)  # let the commits right behind this one join

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows were acknowledged and marked sent."""
        async with self.session_factory() as session:
            async with session.begin():
                postgres = session.bind.dialect.name == "postgresql"
                query = (sa.select(outbox.c.seq, outbox.c.topic, outbox.c.key, outbox.c.payload, outbox.c.type)
                         .where(outbox.c.sent_at.is_(None)).order_by(outbox.c.seq).limit(self.batch_size))
                if postgres:
                    # The lock taken in the same round trip as the read, once (an uncorrelated
                    # subquery is a one-time filter, not a call per row): without it (another
                    # replica's relay holds it) the read finds no rows, as if nothing were pending.
                    query = query.where(sa.select(sa.func.pg_try_advisory_xact_lock(_PG_RELAY_LOCK)).scalar_subquery())
                rows = (await session.execute(query)).all()
                if not rows:  # nothing pending, or another replica's relay holds the lock
                    return 0
                messages = [OutgoingMessage(topic=r.topic, key=r.key, value=r.payload, headers={"type": r.type})
                            for r in rows]
                try:
                    await self.bus.publish(messages)
                except Exception as exc:
                    await session.execute(
                        outbox.update().where(one_of(outbox.c.seq, [r.seq for r in rows], postgres=postgres))
                        .values(attempts=outbox.c.attempts + 1, last_error=(str(exc) or type(exc).__name__)[:500]))
                    await session.commit()
                    raise
                await session.execute(
                    outbox.update().where(one_of(outbox.c.seq, [r.seq for r in rows], postgres=postgres))
                    .values(sent_at=datetime.now(timezone.utc)))
            metrics.OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        # The backlog gauge is refreshed at scrape time (runtime.refresh_metrics), not per batch.
        return len(rows)

    async def backlog(self) -> int:
        async with self.session_factory() as session:
            return int(await session.scalar(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))) or 0)

    async def refresh_backlog(self) -> int:
        n = await self.backlog()
        metrics.OUTBOX_BACKLOG.labels(self.service).set(n)
        return n
