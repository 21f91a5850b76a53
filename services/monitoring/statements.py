"""Statement helpers of monitoring's event handlers."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


class InsertIgnoring:
    """INSERT … ON CONFLICT DO NOTHING into one table, built once per dialect and run as one
    executemany for a run of events (shared.db.insert_ignore builds a new statement, looks up its
    compiled form and makes a round trip per row: on a consumer's hot path that was most of the
    handler's CPU)."""

    def __init__(self, table: sa.Table) -> None:
        self._by_dialect: dict[str, Any] = {
            "postgresql": postgresql.insert(table).on_conflict_do_nothing(),
            "sqlite": sqlite.insert(table).on_conflict_do_nothing(),
        }

    async def __call__(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Rows whose key exists (or came earlier in ``rows``) are skipped: the first one wins."""
        if rows:
            name = session.bind.dialect.name if session.bind is not None else "postgresql"
            await session.execute(self._by_dialect[name], rows)
