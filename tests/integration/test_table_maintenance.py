"""On PostgreSQL with autovacuum off: a look-up prepared while its table was empty keeps a
sequential-scan plan as the table grows, until the service's table maintenance analyzes it."""
from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from shared.table_maintenance import MaintenanceStep, maintain_once

pytestmark = pytest.mark.asyncio

# The shape of the services' look-ups of a run of events (``WHERE key IN ($1, … $10)``) on a
# table of wide rows: planned on an empty table, a sequential scan is the cheaper generic plan.
KEYS = ", ".join(f"'k-{i}'" for i in range(10))


@pytest.fixture
def pg_url(pg_databases) -> str:
    return pg_databases.new("maint")


async def _plan(conn: asyncpg.Connection) -> str:
    return "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE lookup({KEYS})"))


async def test_a_generic_plan_from_an_empty_table_becomes_an_index_scan_once_analyzed(pg_url: str) -> None:
    url = pg_url
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    app = await asyncpg.connect(dsn)  # a service's pooled connection, with its prepared statement
    writer = await asyncpg.connect(dsn)
    engine = create_async_engine(url)
    try:
        await app.execute("CREATE TABLE lookups (id varchar(64) PRIMARY KEY, payload varchar(800) NOT NULL)")
        await app.execute("PREPARE lookup(" + ", ".join(["text"] * 10) + ") AS SELECT payload FROM lookups "
                          "WHERE id IN (" + ", ".join(f"${i}" for i in range(1, 11)) + ")")
        for _ in range(6):  # five custom plans, then PostgreSQL settles on the generic one
            await app.execute(f"EXECUTE lookup({KEYS})")
        await writer.execute("INSERT INTO lookups SELECT 'k-' || g, repeat('x', 200) FROM generate_series(1, 20000) g")
        await writer.execute("SELECT pg_stat_force_next_flush()")
        await writer.execute("SELECT 1")  # the counters reach the shared statistics at this idle point
        assert "Seq Scan on lookups" in await _plan(app)

        steps = await maintain_once(engine)

        assert MaintenanceStep("lookups", vacuum=False) in steps
        assert "Index Scan using lookups_pkey" in await _plan(app)
        assert await maintain_once(engine) == []  # nothing changed since: nothing to do

        await writer.execute("UPDATE lookups SET payload = 'y' WHERE id <= 'k-5'")  # dead row versions
        await writer.execute("SELECT pg_stat_force_next_flush()")
        await writer.execute("SELECT 1")
        assert MaintenanceStep("lookups", vacuum=True) in await maintain_once(engine)
        assert await writer.fetchval("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'lookups'") == 1
    finally:
        await app.close()
        await writer.close()
        await engine.dispose()
