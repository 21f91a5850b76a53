"""A pooled connection the server has closed is replaced at checkout, without a round trip
(shared/db.py: the cheap check that stands in for SQLAlchemy's three-round-trip pre-ping)."""
from __future__ import annotations

import asyncio

import asyncpg
import sqlalchemy as sa

from shared.db import make_engine
from shared.settings import ServiceSettings
from tests.conftest import PG_ADMIN_DSN


async def _backend_pids(engine) -> set[int]:
    async with engine.connect() as conn:
        return {await conn.scalar(sa.text("SELECT pg_backend_pid()"))}


def test_terminated_connection_is_replaced_at_checkout(pg_databases) -> None:
    url = pg_databases.new("pool")

    async def scenario() -> None:
        engine = make_engine(ServiceSettings(database_url=url), pool_size=1, max_overflow=0)
        statements: list[str] = []
        sa.event.listen(engine.sync_engine, "before_cursor_execute",
                        lambda conn, cur, stmt, *a: statements.append(stmt))
        try:
            first = await _backend_pids(engine)
            admin = await asyncpg.connect(PG_ADMIN_DSN)
            try:
                await admin.execute("SELECT pg_terminate_backend($1)", next(iter(first)))
            finally:
                await admin.close()
            await asyncio.sleep(0.2)  # the event loop reads the server's goodbye
            statements.clear()
            second = await _backend_pids(engine)  # no error: a new connection was opened
            assert second != first
            # the checkout asked the server nothing: only our own statement went out
            assert statements == ["SELECT pg_backend_pid()"]
        finally:
            await engine.dispose()

    asyncio.run(scenario())
