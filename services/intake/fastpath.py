"""The hot path of `POST /v1/applications` on PostgreSQL: one statement, one round trip.

The application, its first timeline steps and (when complete) its outbox event are written by
a single INSERT with data-modifying CTEs, run in autocommit on a small asyncpg pool of its own:
one statement is one transaction, so state, timeline and event still commit together (or not
at all), and a unique violation (same Idempotency-Key, same open person+program) fails the
whole statement. The general SQLAlchemy path (SQLite, every other use case) stays the
reference; tests check both store the same rows.

Why not the kernel's session: a pooled SQLAlchemy checkout pings with three round trips
(BEGIN; ";"; ROLLBACK, pool_pre_ping on asyncpg), then BEGIN, three INSERTs and COMMIT — eight
round trips and their Python overhead for what PostgreSQL can take in one.
"""
from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url

APP_COLUMNS = (
    "id", "channel", "channel_ref", "program", "region_code", "handling_region_code", "area",
    "applicant_person_enc", "applicant_person_index", "open_key", "household_enc", "hardship", "discovery",
    "documents", "missing_documents",
    "status", "case_id", "owner_sub", "owner_role", "submitted_by_sub", "submitted_by_role", "received_at",
    "due_by", "due_by_provisional", "idempotency_key", "request_hash", "updated_at", "accepted_at",
    "step_started_at", "clock_due_by", "clock_provisional", "clock_at_risk_on",
)
_JSON = frozenset({"hardship", "discovery", "documents", "missing_documents"})
OUTBOX_COLUMNS = ("event_id", "topic", "key", "type", "payload", "created_at", "attempts")


def _sql(with_event: bool) -> str:
    n = len(APP_COLUMNS)
    app_values = ", ".join(f"${i}" for i in range(1, n + 1))
    steps = (f"INSERT INTO application_steps (application_id, step, at, actor, detail) "
             f"SELECT $1, s.step, ${n + 1}, ${n + 2}, s.detail "
             f"FROM unnest(${n + 3}::text[], ${n + 4}::text[]) WITH ORDINALITY AS s(step, detail, ord) ORDER BY s.ord")
    app = f"INSERT INTO applications ({', '.join(APP_COLUMNS)}) VALUES ({app_values})"
    if not with_event:
        return f"WITH app AS ({app}) {steps}"
    o = n + 5
    out_values = ", ".join(f"${i}" for i in range(o, o + len(OUTBOX_COLUMNS)))
    return (f"WITH app AS ({app}), steps AS ({steps}) "
            f"INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) VALUES ({out_values})")


SQL_WITH_EVENT = _sql(True)
SQL_WITHOUT_EVENT = _sql(False)


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class DuplicateApplication(Exception):
    """A unique index refused the row: same Idempotency-Key, or the person+program is open."""


class PgApplicationWriter:
    def __init__(self, database_url: str, *, pool_size: int = 20) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.pool_size = pool_size
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        if self.pool is None:
            # reset=_keep: the statements here leave no session state behind (autocommit, no
            # SET, LISTEN or advisory locks), so skip the RESET round trip on every release.
            self.pool = await asyncpg.create_pool(self.dsn, min_size=min(4, self.pool_size), max_size=self.pool_size,
                                                  reset=_keep)

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def insert(self, row: dict[str, Any], steps: list[dict[str, Any]], event_row: dict[str, Any] | None) -> None:
        assert self.pool is not None, "PgApplicationWriter.start() was not awaited"
        args: list[Any] = [orjson.dumps(row[c]).decode() if c in _JSON else row[c] for c in APP_COLUMNS]
        args += [steps[0]["at"], steps[0]["actor"], [s["step"] for s in steps], [s["detail"] for s in steps]]
        if event_row is not None:
            args += [event_row[c] for c in OUTBOX_COLUMNS]
        sql = SQL_WITH_EVENT if event_row is not None else SQL_WITHOUT_EVENT
        for attempt in (1, 2):
            try:
                async with self.pool.acquire() as conn:
                    await conn.execute(sql, *args)
                return
            except asyncpg.UniqueViolationError as exc:
                raise DuplicateApplication(str(exc)) from None
            except (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError, OSError):
                # A dropped pooled connection: once more on a fresh one. Safe: if the first try
                # did commit, the second hits the unique keys and the caller replays.
                if attempt == 2:
                    raise


async def _keep(_: asyncpg.Connection) -> None:
    return None
