"""Unit of work: one transaction per use case; state changes and their events commit together."""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events.base import EventData
from shared.logging import correlation_id_var
from shared.messaging.envelope import Envelope
from shared.messaging.tables import outbox
from shared.writes import RowSets, Writes


def outbox_row(env: Envelope) -> dict[str, Any]:
    """The outbox row of an envelope (for use cases that write it in their own statement)."""
    return {"event_id": env.id, "topic": env.topic, "key": env.subject, "type": env.type,
            "payload": env.to_bytes(), "created_at": env.time, "attempts": 0}


class UnitOfWork:
    """``async with uow() as tx: ...; tx.emit(event, subject=...)`` commits state and outbox rows
    in one transaction on a clean exit, rolls back on error, and wakes the relay after a commit
    that emitted events. Given an outer ``session`` (an event consumer's), it only adds to it."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession] | None, *, source: str,
                 on_commit: Callable[[], None] | None = None, session: AsyncSession | None = None) -> None:
        self._factory = session_factory
        self.source = source
        self._on_commit = on_commit
        self._external = session is not None
        self.session: AsyncSession = session  # type: ignore[assignment]
        self.emitted: list[Envelope] = []
        self._rows: list[dict[str, Any]] = []
        self._after_commit: list[Callable[[], None]] = []
        # Writes the use case leaves for the end of its transaction, sent with its outbox event in
        # one statement on PostgreSQL (shared/writes.py).
        self.writes = Writes()
        # Rows of a group of use cases sharing this transaction (a group commit), sent with all
        # their outbox events in one statement whatever the group's size (shared/writes.py).
        self.rows = RowSets()

    async def __aenter__(self) -> "UnitOfWork":
        if not self._external:
            assert self._factory is not None
            self.session = self._factory()
            await self.session.begin()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._external:
            if exc_type is None:
                await self.flush()
            return
        try:
            if exc_type is None:
                await self.flush()
                await self.session.commit()
            else:
                await self.session.rollback()
        finally:
            await self.session.close()
        if exc_type is None:
            if self.emitted and self._on_commit is not None:
                self._on_commit()
            self.run_after_commit()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the transaction has committed (never on rollback): for nudging
        a worker that should see what this transaction wrote. With an outer session, whoever
        commits it calls ``run_after_commit``."""
        self._after_commit.append(callback)

    def run_after_commit(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def emit(self, event: EventData, *, subject: str, correlation_id: str | None = None) -> Envelope:
        env = Envelope(type=event.TYPE, version=event.VERSION, source=self.source, subject=subject,
                       correlation_id=correlation_id or correlation_id_var.get(),
                       data=event.model_dump(mode="json"))
        self._rows.append(outbox_row(env))
        self.emitted.append(env)
        return env

    async def flush(self) -> None:
        """Write the deferred writes and the emitted events into the outbox (still inside the
        transaction). A lone event goes into the writes' statement; several keep their emit order
        (the outbox's sequence) in one executemany."""
        rows, self._rows = self._rows, []
        if self.rows:
            for row in rows:
                self.rows.insert(outbox, row)
            rows = []
        elif len(rows) == 1 and self.writes:
            self.writes.insert(outbox, rows.pop())
        await self.writes.execute(self.session)
        await self.rows.execute(self.session)
        if rows:
            await self.session.execute(outbox.insert(), rows)
