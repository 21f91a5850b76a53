"""Statistics and dead rows of a service's own tables when the server's autovacuum is off (表维护).

PostgreSQL keeps a prepared statement's generic plan until the statistics of its tables change.
A service starts on empty tables, so its look-ups by key (``WHERE id IN (…)``, ``= ANY(…)``) get
planned as sequential scans of a few rows, and with autovacuum off — as on the CI machine, whose
PostgreSQL runs with ``autovacuum = off`` — nothing ever changes those statistics: the plans stay
sequential scans while the tables grow: at 200 applications/s every look-up of a run of events
read whole tables by the end of a minute (``auto_explain`` during ``bench/pipeline_latency.py``,
2026-12-04). Dead row versions (each outbox row marked sent,
each status change) pile up without VACUUM as well.

This loop does on the service's own tables what autovacuum does with its default thresholds:
ANALYZE a table once the rows changed since its last analysis exceed 50 + 10 % of its rows;
VACUUM (ANALYZE) it once its dead rows exceed 50 + 20 %. With the server's autovacuum on it
does not run (``DB_MAINTENANCE=auto``, the default).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.logging import get_logger

log = get_logger("table_maintenance")

# PostgreSQL's own defaults (autovacuum_analyze_threshold / _scale_factor,
# autovacuum_vacuum_threshold / _scale_factor).
ANALYZE_THRESHOLD, ANALYZE_SCALE = 50, 0.1
VACUUM_THRESHOLD, VACUUM_SCALE = 50, 0.2

_ACTIVITY = sa.text(
    "SELECT s.relname, c.reltuples, s.n_mod_since_analyze, s.n_dead_tup "
    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
    "WHERE s.schemaname = current_schema() ORDER BY s.relname")


@dataclass(frozen=True)
class TableActivity:
    """What pg_stat_user_tables says of one table. ``rows`` is its estimated size (pg_class
    reltuples; -1, never analyzed, counts as empty)."""
    table: str
    rows: float
    changed_since_analyze: int
    dead_rows: int


@dataclass(frozen=True)
class MaintenanceStep:
    table: str
    vacuum: bool  # VACUUM (ANALYZE) when true, ANALYZE alone otherwise

    def sql(self) -> str:
        name = '"' + self.table.replace('"', '""') + '"'
        return f"VACUUM (ANALYZE) {name}" if self.vacuum else f"ANALYZE {name}"


def due(tables: list[TableActivity]) -> list[MaintenanceStep]:
    """The tables that autovacuum, with its default thresholds, would vacuum or analyze now."""
    steps = []
    for t in tables:
        rows = max(t.rows, 0.0)
        if t.dead_rows > VACUUM_THRESHOLD + VACUUM_SCALE * rows:
            steps.append(MaintenanceStep(t.table, vacuum=True))
        elif t.changed_since_analyze > ANALYZE_THRESHOLD + ANALYZE_SCALE * rows:
            steps.append(MaintenanceStep(t.table, vacuum=False))
    return steps


async def server_autovacuum_is_on(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return (await conn.scalar(sa.text("SELECT current_setting('autovacuum')"))) == "on"


async def maintain_once(engine: AsyncEngine) -> list[MaintenanceStep]:
    """One round: reads the tables' activity, runs what is due (VACUUM needs autocommit)."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        activity = [TableActivity(r.relname, float(r.reltuples), int(r.n_mod_since_analyze or 0), int(r.n_dead_tup or 0))
                    for r in (await conn.execute(_ACTIVITY)).all()]
        steps = due(activity)
        if not steps:
            return steps
        # Throttled as autovacuum throttles itself (its default cost delay): spread out, not a burst
        # that stalls the service's own statements; reset before the connection goes back to the pool.
        await conn.execute(sa.text("SET vacuum_cost_delay = '2ms'"))
        try:
            for step in steps:
                await conn.execute(sa.text(step.sql()))
        finally:
            await conn.execute(sa.text("RESET vacuum_cost_delay"))
    return steps


async def maintain_forever(engine: AsyncEngine, *, service: str, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            steps = await maintain_once(engine)
            if steps:
                log.debug("tables_maintained", service=service, steps=[s.sql() for s in steps])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database away for a moment, a lock: next round
            log.warning("table_maintenance_failed", service=service, error=f"{type(exc).__name__}: {exc}"[:300])
